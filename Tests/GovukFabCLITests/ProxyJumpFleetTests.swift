import Fleet
import Foundation
import SSHConfig
import SSHTransport
import TestFleet
import Testing

@testable import GovukFabCLI

/// Runs `hostname` on each host.
struct HostnameProbe: FleetTask {
    var invocation = TaskInvocation(name: "hostname-probe")
    var changesHosts: Bool { false }

    func plannedCommands(on host: FleetHost, context: RunContext) -> [String] { ["hostname"] }

    func run(on host: HostContext) async throws -> TaskOutcome {
        let result = try await host.execute("hostname")
        return result.succeeded
            ? .ok(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) : .failed("hostname failed")
    }
}

@Suite(
    "ProxyJump from ssh_config on an isolated fleet",
    .enabled(if: TestFleet.supportsIsolation, "needs root, ip netns and socat"))
struct ProxyJumpFleetTests {
    @Test("hosts only the jump host can reach are run through one login on it, all settings from ssh_config")
    func proxyJumpFromConfig() async throws {
        let fleet = try await withCheckedThrowingContinuation {
            (continuation: CheckedContinuation<TestFleet, any Error>) in
            // Blocking set-up on its own thread, not on a cooperative one.
            Thread {
                continuation.resume(
                    with: Result {
                        let fleet = try TestFleet.start(TestFleetOptions(hostCount: 3, namePrefix: "pj"))
                        try fleet.isolate("pj-1", bridge: true)
                        try fleet.isolate("pj-2")
                        try fleet.isolate("pj-3")
                        return fleet
                    })
            }.start()
        }
        defer { fleet.stop() }
        let jump = fleet.hosts[0]
        let configText = """
            Host jumphost
              HostName \(jump.address)
              Port \(jump.port)
            Host pj-*
              ProxyJump jumphost
              Port 2222
            Host *
              User root
              IdentityFile \(fleet.clientKeyPath)
              UserKnownHostsFile \(fleet.knownHostsPath)
              IdentitiesOnly yes
            """
        let config = try SSHConfigFile.parse(configText, path: "test_ssh_config")
        let inventory = Inventory(
            name: "pj", hosts: fleet.hosts.dropFirst().map { FleetHost(name: $0.name, address: $0.address) })
        let layer = SSHConfigLayer(
            config: config, inventory: inventory, base: SSHClientOptions.from(inventory),
            commandLineConnectTimeout: .seconds(30), localUser: "root")
        let runner = FleetRunner(
            context: RunContext(inventory: inventory),
            options: RunnerOptions(
                parallelism: 5, client: SSHClientOptions.from(inventory), connections: { layer.connection(for: $0) }),
            emit: { _ in })
        let before = logins(jump)
        let report = await runner.run([PlannedTask(task: HostnameProbe(), hosts: inventory.hosts)])
        #expect(report.exitStatus == 0, "\(report.outcomes)")
        for record in report.outcomes { #expect(record.outcome.message == record.host) }
        #expect(logins(jump) - before == 1)
    }

    func logins(_ host: TestFleetHost) -> Int {
        let log = (try? String(contentsOfFile: host.sshdLogPath, encoding: .utf8)) ?? ""
        return log.components(separatedBy: "Accepted publickey").count - 1
    }
}
