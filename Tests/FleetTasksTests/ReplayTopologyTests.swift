import Fleet
import Foundation
import Testing

@testable import FleetTasks

/// deploy-goreplay renders either topology from the inventory.
@Suite("Replay topology")
struct ReplayTopologyTests {
    static let hosts = """
        hosts:
          - {name: cache-1, address: 10.0.0.11, puppet_classes: [cache]}
          - {name: cache-2, address: 10.0.0.12, puppet_classes: [cache]}
          - {name: replay-1, address: 10.0.0.50, puppet_classes: [replay]}
        """

    func inventory(_ replay: String) throws -> Inventory {
        try InventoryParser.parse(Self.hosts + "\n" + replay, file: "test.yml", defaultName: "staging")
    }

    func argv(_ inventory: Inventory, _ name: String) throws -> [String] {
        let host = try #require(inventory.host(named: name))
        return try ReplayServiceDefinition.render(for: host, inventory: inventory, manager: .systemd).arguments
    }

    @Test("today's topology: every capture host replays to the target itself")
    func direct() throws {
        let inventory = try inventory(
            """
            replay:
              args:
                cache: {capture: '{address}:80', targets: ['https://staging.example'], allow_methods: [GET]}
            """)
        #expect(
            try argv(inventory, "cache-1") == [
                "--input-raw", "10.0.0.11:80", "--output-http", "https://staging.example", "--http-allow-method", "GET",
            ])
    }

    @Test("fan-in: capture hosts --output-tcp to the replayer, which runs --input-tcp and --output-http")
    func fanIn() throws {
        let inventory = try inventory(
            """
            replay:
              fan_in: {replayer: replay-1, port: 28020, targets: ['https://staging.example'], extra_args: ['--output-http-workers', '20']}
              args:
                cache: {capture: '{address}:80', allow_methods: [GET]}
            """)
        #expect(
            try argv(inventory, "cache-2") == [
                "--input-raw", "10.0.0.12:80", "--output-tcp", "10.0.0.50:28020", "--http-allow-method", "GET",
            ])
        #expect(
            try argv(inventory, "replay-1") == [
                "--input-tcp", ":28020", "--output-http", "https://staging.example", "--output-http-workers", "20",
            ])
        let unit = try ReplayServiceDefinition.render(
            for: try #require(inventory.host(named: "replay-1")), inventory: inventory, manager: .systemd)
        #expect(
            unit.content.contains(
                "ExecStart=/usr/local/bin/goreplay --input-tcp :28020 --output-http https://staging.example"))
    }

    @Test("fan_in is validated: a target URL and the replayer are required, with located errors")
    func validated() throws {
        do {
            _ = try inventory("replay:\n  fan_in: {replayer: replay-1, targets: ['ftp://x']}\n")
            Issue.record("accepted ftp://")
        } catch let error as InventoryError {
            guard case .invalidValue(let path, "ftp://x", _) = error.problem else {
                Issue.record("\(error)")
                return
            }
            #expect(path == "replay.fan_in.targets[0]")
        }
        do {
            _ = try inventory("replay:\n  fan_in: {targets: ['https://x']}\n")
            Issue.record("accepted a fan_in without replayer")
        } catch {
            #expect("\(error)".contains("replayer"), "\(error)")
        }
        // Without fan_in, capture hosts still need targets.
        do {
            _ = try inventory("replay:\n  args:\n    cache: {capture: ':80'}\n")
            Issue.record("accepted args without targets")
        } catch {
            #expect("\(error)".contains("targets"), "\(error)")
        }
    }
}
