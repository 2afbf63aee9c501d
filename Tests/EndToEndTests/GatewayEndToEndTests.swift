import Foundation
import TestFleet
import Testing

/// govuk-fab through the inventory's `ssh.gateway`, against hosts only the gateway can reach.
@Suite(
    "govuk-fab through a gateway", .serialized,
    .enabled(
        if: TestFleet.supportsIsolation && GovukFabBinary.exists, "needs root, ip netns, socat and the built binary"))
struct GatewayEndToEndTests {
    /// `jump-1` is the gateway (bridged); `jump-2`…`jump-4` live only in the fleet's network namespace.
    static func makeFleet() throws -> (TestFleet, inventory: String, directory: String) {
        let fleet = try TestFleet.start(TestFleetOptions(hostCount: 4, namePrefix: "jump"))
        try fleet.isolate("jump-1", bridge: true)
        for name in ["jump-2", "jump-3", "jump-4"] { try fleet.isolate(name) }
        let directory = fleet.workDirectory + "/cli"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let gateway = fleet.hosts[0]
        var yaml = """
            name: testfleet
            ssh:
              user: \(fleet.user)
              port: 2222
              identity_files: [\(fleet.clientKeyPath)]
              known_hosts: [\(fleet.knownHostsPath)]
              gateway: \(fleet.user)@\(gateway.address):\(gateway.port)
              connect_timeout: 3s
              command_timeout: 60s
            parallelism: 10
            hosts:

            """
        for host in fleet.hosts.dropFirst() {
            yaml += "  - {name: \(host.name), address: \(host.address), port: \(host.port)}\n"
        }
        let inventory = directory + "/testfleet.yml"
        try yaml.write(toFile: inventory, atomically: true, encoding: .utf8)
        return (fleet, inventory, directory)
    }

    @Test("runs on every host through one gateway login; a dead gateway fails each host promptly")
    func runThroughGateway() async throws {
        let (fleet, inventory, directory) = try Self.makeFleet()
        defer { fleet.stop() }
        let gateway = fleet.hosts[0]
        let environment = ["XDG_STATE_HOME": directory + "/state"]
        let before = gatewayLogins(gateway)
        let result = try await CLI.run(
            ["--inventory", inventory, "testfleet", "all", "do:hostname"], environment: environment)
        #expect(result.status == 0, "\(result)")
        for name in ["jump-2", "jump-3", "jump-4"] {
            #expect(result.stdout.contains("[\(name)] out: \(name)\n"), "\(result)")
        }
        let logins = gatewayLogins(gateway) - before
        print("gateway logins for one govuk-fab run over 3 hosts: \(logins)")
        #expect(logins == 1)

        try fleet.stopHost("jump-1")
        let started = ContinuousClock.now
        let failed = try await CLI.run(
            ["--inventory", inventory, "testfleet", "all", "do:hostname"], environment: environment)
        let elapsed = ContinuousClock.now - started
        print("govuk-fab with a dead gateway exited \(failed.status) after \(elapsed)")
        #expect(failed.status != 0)
        #expect(elapsed < .seconds(10))
        for name in ["jump-2", "jump-3", "jump-4"] {
            #expect(
                failed.stdout.contains("(gateway for \(name))") || failed.stderr.contains("(gateway for \(name))"),
                "\(failed)")
        }
    }

    func gatewayLogins(_ host: TestFleetHost) -> Int {
        let log = (try? String(contentsOfFile: host.sshdLogPath, encoding: .utf8)) ?? ""
        return log.components(separatedBy: "Accepted publickey").count - 1
    }
}
