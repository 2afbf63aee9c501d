import Fleet
import Foundation
import Testing

@testable import FleetTasks

/// A newline in a value deploy-goreplay writes into a systemd unit (or upstart job, or run
/// script) would start a directive of its own, e.g. `ExecStartPre=` run as root (issue #15).
@Suite("Service definition injection")
struct ServiceDefinitionInjectionTests {
    static let hosts = """
        hosts:
          - {name: cache-1, address: 10.0.0.11, puppet_classes: [cache]}
          - {name: replay-1, address: 10.0.0.50, puppet_classes: [replay]}

        """

    /// The error for `replay`, or nil when the inventory was accepted (then the rendered unit is returned too).
    func load(_ replay: String) -> (error: InventoryError?, unit: String?) {
        do {
            let inventory = try InventoryParser.parse(Self.hosts + replay, file: "inject.yml", defaultName: "staging")
            let host = inventory.host(named: "cache-1")!
            let unit = try? ReplayServiceDefinition.render(for: host, inventory: inventory, manager: .systemd).content
            return (nil, unit)
        } catch {
            return (error, nil)
        }
    }

    /// Each place a value reaches the unit, with a YAML double-quoted `\n` in it: refused at
    /// load with the exact key path and line, and the character named.
    @Test(
        "a newline in any replay value is a located inventory error",
        arguments: [
            (
                "replay:\n  args:\n    cache: {capture: ':80', targets: ['https://s.example'],\n      extra_args: [\"--stats\\nExecStartPre=/bin/touch /tmp/pwned\"]}\n",
                "replay.args.cache.extra_args[0]", 7
            ),
            (
                "replay:\n  args:\n    cache:\n      capture: \":80\\nExecStartPre=/bin/sh -c id\"\n      targets: ['https://s.example']\n",
                "replay.args.cache.capture", 7
            ),
            (
                "replay:\n  args:\n    cache: {capture: ':80', targets: [\"https://s.example/\\nExecStartPre=/bin/id\"]}\n",
                "replay.args.cache.targets[0]", 6
            ),
            (
                "replay:\n  binary_path: \"/usr/local/bin/goreplay\\nExecStartPre=/bin/id\"\n  args:\n    cache: {capture: ':80', targets: ['https://s.example']}\n",
                "replay.binary_path", 5
            ),
            (
                "replay:\n  service: \"goreplay\\rx\"\n  args:\n    cache: {capture: ':80', targets: ['https://s.example']}\n",
                "replay.service", 5
            ),
            (
                "replay:\n  fan_in: {replayer: replay-1, targets: ['https://s.example'], extra_args: [\"-v\\u000bExecStartPre=/bin/id\"]}\n  args:\n    cache: {capture: ':80'}\n",
                "replay.fan_in.extra_args[0]", 5
            ),
            (
                "replay:\n  fan_in: {replayer: \"replay-1\\nExecStartPre=/bin/id\", targets: ['https://s.example']}\n  args:\n    cache: {capture: ':80'}\n",
                "replay.fan_in.replayer", 5
            ),
        ])
    func refusedAtLoad(replay: String, path: String, line: Int) throws {
        let (error, unit) = load(replay)
        if let unit {
            Issue.record("accepted; the unit now reads:\n\(unit)")
        }
        let refused = try #require(error)
        guard case .invalidValue(let errorPath, let value, let reason) = refused.problem else {
            Issue.record("\(refused)")
            return
        }
        #expect(errorPath == path, "\(refused)")
        #expect(refused.location.line == line, "\(refused)")
        #expect(reason.contains("control character U+"), "\(refused)")
        // The message itself is one line: the bad character is shown escaped.
        #expect(!"\(refused)".contains("\n") && !value.contains("\n") && !value.contains("\r"), "\(refused)")
    }

    @Test("the same values built in code are refused when rendered, for every service manager")
    func refusedAtRender() throws {
        let base = Inventory(
            name: "staging", hosts: [FleetHost(name: "cache-1", address: "10.0.0.11", puppetClasses: ["cache"])])
        let cases: [(inout Inventory) -> Void] = [
            { $0.replay!.arguments["cache"]!.extraArgs = ["--stats\nExecStartPre=/bin/id"] },
            { $0.replay!.binaryPath = "/usr/local/bin/goreplay\nExecStartPre=/bin/id" },
            { $0.replay!.arguments["cache"]!.capture = "{address}:80\u{1B}[2J" },
            {
                $0.hosts[0].address = "10.0.0.11\nExecStartPre=/bin/id"
                $0.replay!.arguments["cache"]!.capture = "{address}:80"
            },
        ]
        for (index, change) in cases.enumerated() {
            var inventory = base
            inventory.replay = ReplaySettings(arguments: [
                "cache": ReplayArguments(capture: ":80", targets: ["https://s.example"])
            ])
            change(&inventory)
            for manager in [ServiceManager.systemd, .upstart, .supervisor] {
                do {
                    let definition = try ReplayServiceDefinition.render(
                        for: inventory.hosts[0], inventory: inventory, manager: manager)
                    Issue.record("case \(index), \(manager): rendered\n\(definition.content)")
                } catch {
                    #expect(error.reason.contains("control character"), "\(error)")
                    #expect(!error.description.contains("\n"), "\(error)")
                }
            }
        }
    }

    @Test("ordinary values still render, tabs and spaces quoted")
    func ordinaryValuesRender() throws {
        let (error, unit) = load(
            "replay:\n  args:\n    cache: {capture: ':80', targets: ['https://s.example'], extra_args: ['--http-set-header', 'X-Mirror: yes']}\n"
        )
        #expect(error == nil, "\(String(describing: error))")
        let content = try #require(unit)
        #expect(
            content.contains(
                #"ExecStart=/usr/local/bin/goreplay --input-raw :80 --output-http https://s.example --http-set-header "X-Mirror: yes""#
            ), "\(content)")
        #expect(!content.contains("ExecStartPre"))
    }
}
