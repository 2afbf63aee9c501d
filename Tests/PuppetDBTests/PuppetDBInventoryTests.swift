import Fleet
import Foundation
import Logging
import SSHTransport
import Testing

/// The fleet's `puppetdb` inventory source against a real PuppetDB: selectors
/// resolve to exactly the nodes whose catalogues declare the class.
@Suite(
    "PuppetDB as an inventory source",
    .enabled(if: LivePuppetDB.isConfigured, "set GOVUK_FAB_PUPPETDB_URL (scripts/puppetdb.sh up)"))
struct PuppetDBInventoryTests {
    func lister(cache: String) -> LiveHostLister {
        var inventory = Inventory(name: "puppetdb-test", hosts: [])
        inventory.source = .puppetDB(PuppetDBSource(url: LivePuppetDB.url ?? ""))
        return LiveHostLister(
            inventory: inventory, options: SSHClientOptions(), cacheDirectory: cache, refresh: true,
            commandTimeout: .seconds(30), logger: Logger(label: "test"))
    }

    func select(_ words: [String]) async throws -> [String] {
        let cache = NSTemporaryDirectory() + "govuk-fab-pdb-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let parsed = try FabricCommandLine.parse(words + ["hosts"])
        let inventory = try await lister(cache: cache).resolve(HostListQuery.queries(for: parsed))
        let plan = try CommandPlan.make(words: parsed, inventory: inventory)
        return plan.allHosts.map(\.name).sorted()
    }

    @Test func puppetClassGorSelectsExactlyTheGorNodes() async throws {
        #expect(try await select(["puppet_class:gor"]) == ["bouncer-1", "cache-1", "cache-2", "cache-3"])
    }

    @Test func nodeTypeAsksForTheNodeClass() async throws {
        #expect(try await select(["node_type:cache"]) == ["cache-1", "cache-2", "cache-3"])
    }

    @Test("a node whose own ipaddress fact smuggles a second host line is left out; its neighbour stays")
    func forgedFactsAreLeftOut() async throws {
        #expect(try await select(["puppet_class:trust_test"]) == ["trusted-1"])
    }

    @Test func unknownClassIsNoMatchNotASilentEmptyList() async throws {
        await #expect(throws: SelectionError.self) { _ = try await select(["puppet_class:no_such_class"]) }
    }
}

/// A PuppetDB that does not answer is an error, never an empty host list.
@Suite("PuppetDB source failures")
struct PuppetDBSourceFailureTests {
    @Test func deadPuppetDBIsAClearError() async throws {
        var inventory = Inventory(name: "dead", hosts: [])
        inventory.source = .puppetDB(PuppetDBSource(url: "http://127.0.0.1:9"))
        let lister = LiveHostLister(
            inventory: inventory, options: SSHClientOptions(),
            cacheDirectory: NSTemporaryDirectory() + "govuk-fab-pdb-dead-\(getpid())", refresh: true,
            commandTimeout: .seconds(5), logger: Logger(label: "test"))
        await #expect(throws: LiveInventoryError.self) {
            _ = try await lister.resolve([HostListQuery(.puppetClass("gor"))])
        }
    }
}
