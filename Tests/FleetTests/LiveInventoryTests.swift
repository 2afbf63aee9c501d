import Fleet
import Foundation
import Logging
import SSHTransport
import TestFleet
import Testing

@Suite(
    "Live inventory from a gateway command", .serialized,
    .enabled(if: TestFleet.isSupported, "needs root and the test fleet tools"))
struct LiveInventoryTests {
    static let nodeList = """
        #!/bin/sh
        echo "$*" >> /etc/govuk-fab/calls
        case "$1" in
          -C) [ "$2" = gor ] && printf 'cache-1.integration.internal\\ncache-2.integration.internal\\n' ;;
          -c) [ "$2" = backend ] && printf 'backend-1.integration.internal\\n' ;;
          "") printf 'cache-1.integration.internal\\ncache-2.integration.internal\\n\\nbackend-1.integration.internal\\n' ;;
        esac
        exit 0
        """

    /// A gateway host with `govuk_node_list` (and broken variants) under /etc/govuk-fab.
    static func makeFleet() async throws -> TestFleet {
        let fleet = try await offPool { try TestFleet.start(TestFleetOptions(hostCount: 1, namePrefix: "src")) }
        let host = fleet.hosts[0]
        for (name, text) in [
            ("govuk_node_list", nodeList),
            ("failing_list", "#!/bin/sh\necho 'puppetdb: connection refused' >&2\nexit 3\n"),
            ("slow_list", "#!/bin/sh\nsleep 20\n"),
            ("garbage_list", "#!/bin/sh\nprintf 'cache-1.example\\nnot a host\\n'\n"),
        ] {
            let path = host.realPath("/etc/govuk-fab/\(name)")
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, 0o755)
        }
        return fleet
    }

    func lister(_ fleet: TestFleet, command: String, cache: String, refresh: Bool = false) -> LiveHostLister {
        let gateway = fleet.hosts[0]
        var inventory = Inventory(
            name: "live",
            ssh: SSHSettings(
                user: "root", identityFiles: [fleet.clientKeyPath], knownHosts: [fleet.knownHostsPath],
                gateway: [GatewayHop(host: gateway.address, port: gateway.port)], connectTimeout: .seconds(20)))
        inventory.source = .gatewayCommand(command)
        var options = SSHClientOptions.from(inventory)
        options.useAgent = false
        return LiveHostLister(
            inventory: inventory, options: options, cacheDirectory: cache, refresh: refresh,
            commandTimeout: .seconds(2), logger: Logger(label: "test"))
    }

    func words(_ text: [String]) throws -> [CommandWord] {
        try FabricCommandLine.parse(text + ["hosts"], indexOffset: 1)
    }

    @Test("selectors resolve through govuk_node_list on the gateway; answers are cached until --refresh")
    func selectorsAndCache() async throws {
        let fleet = try await Self.makeFleet()
        defer { fleet.stop() }
        let cache = fleet.workDirectory + "/cache"
        let calls = fleet.hosts[0].realPath("/etc/govuk-fab/calls")
        let command = "/etc/govuk-fab/govuk_node_list"

        let gorWords = try words(["puppet_class:gor"])
        let gor = try await lister(fleet, command: command, cache: cache).resolve(HostListQuery.queries(for: gorWords))
        let selected = try gor.select([.puppetClass(["gor"])]).hosts
        #expect(selected.map(\.name) == ["cache-1", "cache-2"])
        #expect(selected.map(\.address) == ["cache-1.integration.internal", "cache-2.integration.internal"])
        #expect(try String(contentsOfFile: calls, encoding: .utf8) == "-C gor\n")

        // Cached: the gateway is not asked again; --refresh asks again.
        _ = try await lister(fleet, command: command, cache: cache).resolve(HostListQuery.queries(for: gorWords))
        #expect(try String(contentsOfFile: calls, encoding: .utf8) == "-C gor\n")
        _ = try await lister(fleet, command: command, cache: cache, refresh: true).resolve(
            HostListQuery.queries(for: gorWords))
        #expect(try String(contentsOfFile: calls, encoding: .utf8) == "-C gor\n-C gor\n")

        let backend = try await lister(fleet, command: command, cache: cache)
            .resolve(HostListQuery.queries(for: try words(["class:backend"])))
        #expect(try backend.select([.nodeClass(["backend"])]).hosts.map(\.name) == ["backend-1"])

        let all = try await lister(fleet, command: command, cache: cache).resolve(
            HostListQuery.queries(for: try words(["all"])))
        #expect(try all.select([.all]).hosts.map(\.name) == ["cache-1", "cache-2", "backend-1"])
        #expect(try String(contentsOfFile: calls, encoding: .utf8) == "-C gor\n-C gor\n-c backend\n\n")

        // A class nobody has is an empty answer, which selection reports as "no hosts matched".
        let none = try await lister(fleet, command: command, cache: cache)
            .resolve(HostListQuery.queries(for: try words(["puppet_class:nothing"])))
        #expect(throws: SelectionError.self) { try none.select([.puppetClass(["nothing"])]) }
    }

    @Test("a failing, slow or garbled source is a clear error, never an empty list")
    func failures() async throws {
        let fleet = try await Self.makeFleet()
        defer { fleet.stop() }
        let cache = fleet.workDirectory + "/cache"
        let queries = HostListQuery.queries(for: try words(["puppet_class:gor"]))
        for (script, expected) in [
            ("failing_list", "exited 3: puppetdb: connection refused"),
            ("slow_list", "did not finish within"),
            ("garbage_list", "line 2 of the answer to puppet_class:gor is not a host name: 'not a host'"),
        ] {
            do {
                _ = try await lister(fleet, command: "/etc/govuk-fab/\(script)", cache: cache).resolve(queries)
                Issue.record("\(script) gave hosts")
            } catch let error as LiveInventoryError {
                #expect("\(error)".contains(expected), "\(error)")
            }
        }
        // No gateway: the command has nowhere to run.
        var noGateway = lister(fleet, command: "govuk_node_list", cache: cache)
        noGateway.inventory.ssh.gateway = []
        await #expect(throws: LiveInventoryError.self) { try await noGateway.resolve(queries) }
    }

    @Test("source: and cache_ttl: parse; hosts are then optional")
    func parsing() throws {
        let inventory = try InventoryParser.parse(
            "ssh: {gateway: jumpbox.example}\nsource: {gateway_command: govuk_node_list}\ncache_ttl: 2m\n",
            file: "/x/live.yml", defaultName: "live")
        #expect(inventory.source == .gatewayCommand("govuk_node_list"))
        #expect(inventory.cacheTTL == .seconds(120))
        #expect(inventory.hosts.isEmpty)
        #expect(throws: InventoryError.self) {
            try InventoryParser.parse("source: puppetdb\nhosts: []\n", file: "/x/bad.yml", defaultName: "bad")
        }
    }
}
