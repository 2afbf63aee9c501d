import Fleet
import Foundation
import SSHTransport
import TestFleet
import Testing

/// Runs `hostname` on each host (a minimal task, so this test needs no task registry).
struct HostnameTask: FleetTask {
    var invocation = TaskInvocation(name: "hostname-test")
    var changesHosts: Bool { false }

    func plannedCommands(on host: FleetHost, context: RunContext) -> [String] { ["hostname"] }

    func run(on host: HostContext) async throws -> TaskOutcome {
        let result = try await host.execute("hostname")
        return result.succeeded
            ? .ok(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) : .failed("hostname failed")
    }
}

@Suite(
    "FleetRunner through the inventory's gateway", .serialized,
    .enabled(if: TestFleet.supportsIsolation, "needs root, ip netns and socat"))
struct GatewayRunnerTests {
    @Test("one gateway login per run for every host behind it; a dead gateway fails each host, naming it")
    func runnerUsesOneGateway() async throws {
        let fleet = try await offPool {
            let fleet = try TestFleet.start(TestFleetOptions(hostCount: 5, namePrefix: "bastion"))
            try fleet.isolate("bastion-1", bridge: true)
            for host in fleet.hosts.dropFirst() { try fleet.isolate(host.name) }
            return fleet
        }
        defer { fleet.stop() }
        let gateway = fleet.hosts[0]
        let inner = Array(fleet.hosts.dropFirst())
        let inventory = Inventory(
            name: "isolated",
            ssh: SSHSettings(
                user: fleet.user, port: 2222, identityFiles: [fleet.clientKeyPath], knownHosts: [fleet.knownHostsPath],
                gateway: [GatewayHop(host: gateway.address, port: gateway.port)], connectTimeout: .seconds(20)),
            hosts: inner.map { FleetHost(name: $0.name, address: $0.address) })
        var client = SSHClientOptions.from(inventory)
        client.useAgent = false
        let runner = FleetRunner(
            context: RunContext(inventory: inventory), options: RunnerOptions(parallelism: 10, client: client),
            emit: { _ in })
        let step = PlannedTask(task: HostnameTask(), hosts: inventory.hosts)

        let before = logins(gateway)
        let report = await runner.run([step])
        #expect(report.exitStatus == 0)
        #expect(report.outcomes.count == inner.count)
        for record in report.outcomes {
            #expect(record.outcome.hostOutcome == .exited(status: 0))
            #expect(record.outcome.message == record.host)
        }
        let count = logins(gateway) - before
        print("FleetRunner: gateway logins for \(inner.count) hosts in one run: \(count)")
        #expect(count == 1)

        try await offPool { try fleet.stopHost("bastion-1") }
        let started = ContinuousClock.now
        let failed = await runner.run([step])
        print("FleetRunner: dead gateway, \(inner.count) hosts failed in \(ContinuousClock.now - started)")
        #expect(failed.exitStatus != 0)
        for record in failed.outcomes {
            guard case .connectionFailed(let message) = record.outcome.hostOutcome else {
                Issue.record("\(record.host): \(record.outcome.hostOutcome)")
                continue
            }
            #expect(message.contains("(gateway for \(record.host))"), "\(message)")
        }
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    func logins(_ host: TestFleetHost) -> Int {
        let log = (try? String(contentsOfFile: host.sshdLogPath, encoding: .utf8)) ?? ""
        return log.components(separatedBy: "Accepted publickey").count - 1
    }
}

/// Runs blocking fleet set-up (subprocesses) on its own thread, so it never holds one of the few
/// cooperative threads the other suites' connections need meanwhile.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
