import Foundation
import Testing

@testable import Fleet

/// The repository's `inventories/` directory.
let shippedInventories: String = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("inventories").path

/// Parses `yaml` as `test.yml`, expecting an error; returns it.
func inventoryError(_ yaml: String, include: String? = nil) -> InventoryError? {
    do {
        _ = try InventoryParser.parse(yaml, file: "test.yml", defaultName: "test") {
            (path: String) throws(InventoryError) -> String in
            guard let include else {
                throw InventoryError(.unreadable(reason: "no such file"), at: SourceLocation(file: path))
            }
            return include
        }
        return nil
    } catch {
        return error
    }
}

@Suite("Shipped inventories")
struct ShippedInventoryTests {
    @Test(arguments: ["production", "staging", "integration"])
    func parses(environment: String) throws {
        let inventory = try InventoryLoader.load(environment: environment, searchPaths: [shippedInventories])
        #expect(inventory.name == environment)
        #expect(inventory.hosts.count >= 10)
        #expect(inventory.ssh.gateway.count == 1)
        #expect(inventory.ssh.gateway[0].host.hasPrefix("jumpbox."))
        #expect(inventory.services.candidates(for: "goreplay") == ["goreplay", "gor"])
        #expect(inventory.services.manager == .upstart)
        // Every address is private or internal: nothing a test could reach.
        for host in inventory.hosts {
            #expect(host.address.hasPrefix("10.") || host.address.hasSuffix(".compute.internal"), "\(host.name)")
        }
    }

    @Test func productionDetails() throws {
        let inventory = try InventoryLoader.load(environment: "production", searchPaths: [shippedInventories])
        #expect(inventory.confirmChanges)
        #expect(inventory.parallelism == 20)
        #expect(inventory.ssh.user == nil)
        #expect(inventory.ssh.port == 22)
        #expect(inventory.ssh.connectTimeout == .seconds(10))
        #expect(inventory.ssh.commandTimeout == .seconds(600))
        #expect(inventory.ssh.identityFiles == ["~/.ssh/id_ed25519", "~/.ssh/id_rsa"])
        #expect(inventory.ssh.gateway == [GatewayHop(host: "jumpbox.publishing.service.gov.uk")])
        #expect(inventory.dataSync.marker == "/etc/govuk/env.d/FACTER_data_sync_in_progress")
        #expect(inventory.dataSync.window.description == "23:00–05:30 Europe/London")
        let cache1 = try #require(inventory.host(named: "cache-1"))
        #expect(cache1.address == "10.1.2.11")
        #expect(cache1.nodeClass == "cache")
        #expect(cache1.puppetClasses.contains("gor"))
        #expect(inventory.host(named: "10.1.2.12")?.name == "cache-2")
        let replay = try #require(inventory.replay)
        #expect(replay.service == "gor")
        #expect(replay.arguments(for: cache1)?.capture == "127.0.0.1:7999")
        #expect(replay.arguments(for: cache1)?.allowMethods == ["GET", "HEAD"])
        let bouncer = try #require(inventory.host(named: "bouncer-1"))
        #expect(replay.arguments(for: bouncer)?.targets == ["https://bouncer.staging.publishing.service.gov.uk"])
        #expect(replay.arguments(for: try #require(inventory.host(named: "backend-1"))) == nil)
        #expect(
            try InventoryLoader.load(environment: "staging", searchPaths: [shippedInventories]).confirmChanges == false)
    }

    @Test func localTakesHostsFromTheFleetFile() throws {
        let path = shippedInventories + "/local.yml"
        let text = try InventoryParser.readFile(path)
        var includedPath = ""
        let generated = """
            hosts:
              - {name: cache-1, address: 127.0.0.2, port: 40022, puppet_classes: [gor, govuk::node::s_cache]}
              - {name: cache-2, address: 127.0.0.3, port: 40023, puppet_classes: [gor, govuk::node::s_cache]}
              - {name: cache-3, address: 127.0.0.4, port: 40024, puppet_classes: [gor, govuk::node::s_cache]}
            """
        let inventory = try InventoryParser.parse(text, file: path, defaultName: "local") {
            (included: String) throws(InventoryError) -> String in
            includedPath = included
            return generated
        }
        #expect(includedPath == shippedInventories + "/../demo-state/fleet/hosts.yml")
        #expect(inventory.hosts.map(\.name) == ["cache-1", "cache-2", "cache-3"])
        #expect(inventory.port(for: inventory.hosts[1]) == 40023)
        #expect(inventory.user(for: inventory.hosts[0]) == "oncall")
        #expect(inventory.serviceManager(for: inventory.hosts[0]) == .supervisor)
        #expect(inventory.ssh.knownHosts == [shippedInventories + "/../demo-state/fleet/known_hosts"])
        #expect(inventory.ssh.gateway.isEmpty)
    }

    @Test func localWithoutARunningFleetSaysWhichFileIsMissing() throws {
        // Nested, so "../demo-state" resolves inside this test's own directory.
        let directory = try temporaryDirectory() + "/inventories"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        try FileManager.default.copyItem(atPath: shippedInventories + "/local.yml", toPath: directory + "/local.yml")
        let error = try #require(throws: InventoryError.self) {
            try InventoryLoader.load(environment: "local", searchPaths: [directory])
        }
        #expect(error.location.file == directory + "/../demo-state/fleet/hosts.yml")
        #expect(error.problem == .unreadable(reason: "no such file"))
    }
}

@Suite("Inventory loading")
struct InventoryLoaderTests {
    @Test func searchesDirectoriesInOrderAndListsEnvironmentsWhenUnknown() throws {
        let first = try temporaryDirectory()
        let second = try temporaryDirectory()
        try "name: one\nhosts: [{name: a}]\n".write(toFile: first + "/alpha.yml", atomically: true, encoding: .utf8)
        try "name: two\nhosts: [{name: b}]\n".write(toFile: second + "/alpha.yml", atomically: true, encoding: .utf8)
        try "hosts: [{name: c}]\n".write(toFile: second + "/beta.yaml", atomically: true, encoding: .utf8)
        #expect(try InventoryLoader.load(environment: "alpha", searchPaths: [first, second]).name == "one")
        #expect(try InventoryLoader.load(environment: "beta", searchPaths: [first, second]).name == "beta")
        let error = try #require(throws: InventoryError.self) {
            try InventoryLoader.load(environment: "alhpa", searchPaths: [first, second])
        }
        guard case .unknownEnvironment(let name, let available, let searched) = error.problem else {
            Issue.record("unexpected \(error)")
            return
        }
        #expect(name == "alhpa")
        #expect(available == ["alpha", "beta"])
        #expect(searched == [first, second])
        #expect(error.description.contains("did you mean 'alpha'"))
        #expect(throws: InventoryError.self) {
            try InventoryLoader.load(environment: "../etc/passwd", searchPaths: [first])
        }
    }

    @Test func loadsAFileDirectlyAndNamesItAfterTheFile() throws {
        let directory = try temporaryDirectory()
        try "hosts: [{name: a}]\n".write(toFile: directory + "/custom.yml", atomically: true, encoding: .utf8)
        let inventory = try InventoryLoader.load(file: directory + "/custom.yml")
        #expect(inventory.name == "custom")
        #expect(inventory.sourcePath == directory + "/custom.yml")
    }
}

@Suite("Inventory defaults and values")
struct InventoryValueTests {
    @Test func defaults() throws {
        let inventory = try InventoryParser.parse(
            "hosts:\n  - name: backend-3.backend\n", file: "x.yml", defaultName: "x")
        #expect(inventory.name == "x")
        #expect(inventory.parallelism == 20)
        #expect(inventory.confirmChanges == false)
        #expect(inventory.ssh == SSHSettings())
        #expect(inventory.ssh.connectTimeout == .seconds(10))
        #expect(inventory.services.manager == .systemd)
        #expect(inventory.dataSync == DataSyncSettings())
        #expect(inventory.replay == nil)
        let host = inventory.hosts[0]
        #expect(host.address == "backend-3.backend")
        #expect(host.nodeClass == "backend")
        #expect(host.port == nil && host.user == nil && host.serviceManager == nil)
    }

    @Test func gatewayChainAndOverrides() throws {
        let yaml = """
            ssh:
              user: deploy
              port: 2222
              gateway: [ops@bastion.example.org:2200, "jump2.internal", "[fd00::1]:22"]
              connect_timeout: 1m30s
              command_timeout: 500ms
            hosts:
              - {name: a, port: 22, user: root, service_manager: sysv, node_class: custom, node_type: cache}
            """
        let inventory = try InventoryParser.parse(yaml, file: "x.yml", defaultName: "x")
        #expect(
            inventory.ssh.gateway == [
                GatewayHop(user: "ops", host: "bastion.example.org", port: 2200),
                GatewayHop(host: "jump2.internal"),
                GatewayHop(host: "fd00::1", port: 22),
            ])
        #expect(inventory.ssh.gateway[2].description == "[fd00::1]:22")
        #expect(inventory.ssh.connectTimeout == .seconds(90))
        #expect(inventory.ssh.commandTimeout == .milliseconds(500))
        let host = inventory.hosts[0]
        #expect(inventory.port(for: host) == 22)
        #expect(inventory.user(for: host) == "root")
        #expect(inventory.serviceManager(for: host) == .sysv)
        #expect(host.nodeClass == "custom")
    }

    @Test func anchorsAndAliasesWork() throws {
        let yaml = """
            hosts:
              - {name: cache-1, puppet_classes: &cache [govuk::node::s_cache, gor]}
              - {name: cache-2, puppet_classes: *cache}
            """
        let inventory = try InventoryParser.parse(yaml, file: "x.yml", defaultName: "x")
        #expect(inventory.hosts[1].puppetClasses == ["govuk::node::s_cache", "gor"])
    }

    @Test func timesStayTextEvenThoughYAML11WouldReadThemAsNumbers() throws {
        let yaml = "data_sync:\n  window: {start: 22:00, end: 08:00, time_zone: UTC}\nhosts: [{name: a}]\n"
        let inventory = try InventoryParser.parse(yaml, file: "x.yml", defaultName: "x")
        #expect(inventory.dataSync.window.description == "22:00–08:00 UTC")
    }
}

@Suite("Inventory errors are located")
struct InventoryErrorTests {
    @Test func yamlSyntax() throws {
        let error = try #require(inventoryError("hosts:\n  - name: a\n   bad: [\n"))
        guard case .syntax = error.problem else {
            Issue.record("\(error)")
            return
        }
        #expect(error.location.line == 3)
        #expect(error.description.hasPrefix("test.yml:3:"))
    }

    @Test func emptyFile() throws {
        let error = try #require(inventoryError(""))
        #expect(error.problem == .syntax("the file is empty"))
    }

    @Test func unknownTopLevelKeySuggestsTheNearest() throws {
        let error = try #require(inventoryError("hosts: [{name: a}]\nparalelism: 4\n"))
        #expect(error.problem == .unknownKey(key: "paralelism", in: "the environment", suggestion: "parallelism"))
        #expect(error.location == SourceLocation(file: "test.yml", line: 2, column: 1))
        #expect(
            error.description
                == "test.yml:2:1: unknown key 'paralelism' in environment (did you mean 'parallelism'?)"
                .replacingOccurrences(
                    of: "in environment", with: "in the environment"))
    }

    @Test func unknownKeysInSectionsAndHosts() throws {
        let ssh = try #require(inventoryError("ssh:\n  conect_timeout: 5s\nhosts: [{name: a}]\n"))
        #expect(ssh.problem == .unknownKey(key: "conect_timeout", in: "ssh", suggestion: "connect_timeout"))
        #expect(ssh.location.line == 2 && ssh.location.column == 3)
        let host = try #require(inventoryError("hosts:\n  - name: a\n  - name: b\n    puppet_class: [gor]\n"))
        #expect(host.problem == .unknownKey(key: "puppet_class", in: "host hosts[1]", suggestion: "puppet_classes"))
        #expect(host.location.line == 4)
        let nothingNear = try #require(inventoryError("hosts: [{name: a}]\nzzzzzz: 1\n"))
        #expect(nothingNear.problem == .unknownKey(key: "zzzzzz", in: "the environment", suggestion: nil))
    }

    @Test func duplicateKey() throws {
        let error = try #require(inventoryError("parallelism: 3\nhosts: [{name: a}]\nparallelism: 4\n"))
        #expect(error.problem == .duplicateKey(key: "parallelism", firstLine: 1))
        #expect(error.location.line == 3)
    }

    @Test func missingKeys() throws {
        let noHosts = try #require(inventoryError("parallelism: 3\n"))
        #expect(noHosts.problem == .missingKey(key: "hosts", in: "the environment"))
        let noName = try #require(inventoryError("hosts:\n  - address: 10.0.0.1\n"))
        #expect(noName.problem == .missingKey(key: "name", in: "host hosts[0]"))
        #expect(noName.location.line == 2)
        let noZone = try #require(
            inventoryError(
                "data_sync:\n  window:\n    start: '23:00'\n    end: '05:30'\nhosts: [{name: a}]\n"))
        #expect(noZone.problem == .missingKey(key: "time_zone", in: "data_sync.window"))
        #expect(noZone.location.line == 3)
    }

    @Test func wrongTypes() throws {
        let list = try #require(inventoryError("ssh:\n  user: [a, b]\nhosts: [{name: a}]\n"))
        #expect(list.problem == .wrongType(path: "ssh.user", expected: "a string", found: "a list"))
        #expect(list.location.line == 2 && list.location.column == 9)
        let number = try #require(inventoryError("parallelism: many\nhosts: [{name: a}]\n"))
        #expect(number.problem == .wrongType(path: "parallelism", expected: "an integer", found: "the scalar 'many'"))
        let bool = try #require(inventoryError("confirm_changes: maybe\nhosts: [{name: a}]\n"))
        #expect(
            bool.problem == .wrongType(path: "confirm_changes", expected: "true or false", found: "the scalar 'maybe'"))
        let hosts = try #require(inventoryError("hosts:\n  name: a\n"))
        #expect(hosts.problem == .wrongType(path: "hosts", expected: "a list", found: "a mapping"))
        #expect(hosts.location.line == 2)
    }

    @Test func badDurations() throws {
        for (text, line) in [("10", 3), ("10x", 3), ("0s", 3), ("-5s", 3)] {
            let error = try #require(
                inventoryError("ssh:\n  user: a\n  connect_timeout: \(text)\nhosts: [{name: a}]\n"))
            guard case .invalidValue(let path, let value, _) = error.problem else {
                Issue.record("\(error)")
                continue
            }
            #expect(path == "ssh.connect_timeout")
            #expect(value == text)
            #expect(error.location.line == line)
        }
    }

    @Test func badTimesAndTimeZones() throws {
        let time = try #require(
            inventoryError(
                "data_sync:\n  window:\n    start: '25:00'\n    end: '05:30'\n    time_zone: UTC\nhosts: [{name: a}]\n")
        )
        guard case .invalidValue("data_sync.window.start", "25:00", _) = time.problem else {
            Issue.record("\(time)")
            return
        }
        #expect(time.location.line == 3)
        let end = try #require(
            inventoryError(
                "data_sync:\n  window:\n    start: '23:00'\n    end: 'half five'\n    time_zone: UTC\nhosts: [{name: a}]\n"
            ))
        #expect(end.location.line == 4)
        let zone = try #require(
            inventoryError(
                "data_sync:\n  window:\n    start: '23:00'\n    end: '05:30'\n    time_zone: Europe/Lodnon\nhosts: [{name: a}]\n"
            ))
        guard case .invalidValue("data_sync.window.time_zone", "Europe/Lodnon", let reason) = zone.problem else {
            Issue.record("\(zone)")
            return
        }
        #expect(reason.contains("Europe/London"))
        #expect(zone.location.line == 5)
        let same = try #require(
            inventoryError(
                "data_sync:\n  window: {start: '05:00', end: '05:00', time_zone: UTC}\nhosts: [{name: a}]\n"))
        guard case .invalidValue("data_sync.window.end", _, _) = same.problem else {
            Issue.record("\(same)")
            return
        }
    }

    @Test func duplicateHostNames() throws {
        let error = try #require(inventoryError("hosts:\n  - name: cache-1\n  - name: cache-2\n  - name: Cache-1\n"))
        #expect(
            error.problem
                == .duplicateHostName(
                    name: "Cache-1", firstLocation: SourceLocation(file: "test.yml", line: 2, column: 5)))
        #expect(error.location.line == 4)
    }

    @Test func duplicateAddressAndPort() throws {
        let yaml = """
            ssh: {port: 2222}
            hosts:
              - {name: a, address: 10.0.0.1}
              - {name: b, address: 10.0.0.1, port: 22}
              - {name: c, address: 10.0.0.1, port: 2222}
            """
        let error = try #require(inventoryError(yaml))
        guard case .duplicateAddress("10.0.0.1", 2222, "a", let first) = error.problem else {
            Issue.record("\(error)")
            return
        }
        #expect(first.line == 3)
        #expect(error.location.line == 5)
    }

    @Test func badValues() throws {
        let port = try #require(inventoryError("hosts:\n  - {name: a, port: 70000}\n"))
        guard case .invalidValue("hosts[0].port", "70000", _) = port.problem else {
            Issue.record("\(port)")
            return
        }
        let gateway = try #require(inventoryError("ssh:\n  gateway: [ok.example, 'bad host:99']\nhosts: [{name: a}]\n"))
        guard case .invalidValue("ssh.gateway[1]", "bad host:99", _) = gateway.problem else {
            Issue.record("\(gateway)")
            return
        }
        #expect(gateway.location.line == 2)
        let manager = try #require(inventoryError("services: {manager: systemdd}\nhosts: [{name: a}]\n"))
        guard case .invalidValue("services.manager", "systemdd", let reason) = manager.problem else {
            Issue.record("\(manager)")
            return
        }
        #expect(reason.contains("did you mean 'systemd'"))
        let name = try #require(inventoryError("hosts:\n  - name: 'cache 1'\n"))
        guard case .invalidValue("hosts[0].name", "cache 1", _) = name.problem else {
            Issue.record("\(name)")
            return
        }
        let marker = try #require(inventoryError("data_sync: {marker: relative/path}\nhosts: [{name: a}]\n"))
        guard case .invalidValue("data_sync.marker", _, _) = marker.problem else {
            Issue.record("\(marker)")
            return
        }
    }

    @Test func replayBlockIsValidated() throws {
        let base = "hosts: [{name: a}]\nreplay:\n  args:\n    gor:\n"
        let target = try #require(inventoryError(base + "      capture: '127.0.0.1:7999'\n      targets: [ftp://x]\n"))
        guard case .invalidValue("replay.args.gor.targets[0]", "ftp://x", _) = target.problem else {
            Issue.record("\(target)")
            return
        }
        #expect(target.location.line == 6)
        let capture = try #require(inventoryError(base + "      capture: localhost\n      targets: ['http://x']\n"))
        guard case .invalidValue("replay.args.gor.capture", "localhost", _) = capture.problem else {
            Issue.record("\(capture)")
            return
        }
        let method = try #require(
            inventoryError(
                base + "      capture: ':80'\n      targets: ['http://x']\n      allow_methods: [get]\n"))
        #expect(method.location.line == 7)
        let key = try #require(inventoryError(base + "      capture: ':80'\n      target: ['http://x']\n"))
        #expect(key.problem == .unknownKey(key: "target", in: "replay args 'replay.args.gor'", suggestion: "targets"))
    }

    @Test func errorsInIncludedFilesNameThatFile() throws {
        let error = try #require(
            inventoryError(
                "include_hosts: fleet/hosts.yml\n", include: "hosts:\n  - name: a\n  - nme: b\n"))
        #expect(error.location.file == "fleet/hosts.yml")
        #expect(error.location.line == 3)
        #expect(error.problem == .unknownKey(key: "nme", in: "host hosts[1]", suggestion: "name"))
        let duplicate = try #require(
            inventoryError(
                "hosts: [{name: a}]\ninclude_hosts: h.yml\n", include: "hosts:\n  - name: a\n"))
        guard case .duplicateHostName("a", let first) = duplicate.problem else {
            Issue.record("\(duplicate)")
            return
        }
        #expect(first.file == "test.yml")
        #expect(duplicate.location.file == "h.yml")
    }
}

func temporaryDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("fleet-tests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite("Documented error messages")
struct DocumentedErrorMessageTests {
    /// The messages quoted in docs/inventory.md, for the same mistakes.
    @Test func messagesMatchTheDocs() throws {
        func message(_ yaml: String) throws -> String { try #require(inventoryError(yaml)).description }
        #expect(
            try message("ssh:\n  user: [a, b]\nhosts: [{name: a}]\n")
                == "test.yml:2:9: 'ssh.user' must be a string, not a list")
        #expect(
            try message("ssh:\n  connect_timeout: 10x\nhosts: [{name: a}]\n")
                == "test.yml:2:20: 'ssh.connect_timeout': invalid value '10x': expected a positive duration such as 500ms, 10s, 10m or 1h30m"
        )
        #expect(
            try message("hosts:\n  - {name: cache-1, address: 10.2.2.11}\n  - {name: cache-2, address: 10.2.2.11}\n")
                == "test.yml:3:5: address 10.2.2.11:22 is already used by host 'cache-1' (at test.yml:2:5)")
        #expect(
            try message("hosts:\n  - {name: cache-1}\n  - {name: cache-1}\n")
                == "test.yml:3:5: duplicate host name 'cache-1' (first defined at test.yml:2:5)")
        #expect(
            try message("hosts:\n  - {address: x}\n")
                == "test.yml:2:5: missing required key 'name' in host hosts[0]")
        let syntax = try message("hosts:\n  - name: a\n  bad: x: y\n")
        #expect(syntax.hasPrefix("test.yml:3:"))
        #expect(syntax.contains("invalid YAML: "))
    }
}
