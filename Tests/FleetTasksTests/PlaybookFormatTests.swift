import Fleet
import Foundation
import Testing

@testable import FleetTasks

/// The playbook format fabric-scripts needed: arguments, let values, pinned hosts,
/// runs_once/serial, check and call steps; every load error one located line.
@Suite("Playbook format: arguments, pins, checks and calls")
struct PlaybookFormatTests {
    static let head = "name: x\nsummary: s\nchanges: true\n"

    @Test(
        "new keys are validated where they are written",
        arguments: [
            (
                head + "args:\n  - {name: r, type: float}\nsteps:\n  - run: id\n",
                "playbooks/bad.yml:5:21: 'args.type': invalid value 'float': use text, word, int, host, service"
            ),
            (
                head + "args:\n  - {name: r, default: a}\n  - {name: s}\nsteps:\n  - run: id\n",
                "playbooks/bad.yml:6:12: 'args.name': invalid value 's': a required argument cannot follow one with a default"
            ),
            (
                head + "args:\n  - {name: r, type: int, default: many}\nsteps:\n  - run: id\n",
                "playbooks/bad.yml:5:35: 'args.default': invalid value 'many': a whole number"
            ),
            (
                head + "args:\n  - {name: r, pattern: '(unclosed'}\nsteps:\n  - run: id\n",
                "playbooks/bad.yml:5:24: 'args.pattern': invalid value '(unclosed': not a regular expression"
            ),
            (
                head + "args:\n  - {name: host}\nsteps:\n  - run: id\n",
                "playbooks/bad.yml:5:3: 'args': invalid value 'host': 'host' is a built-in name"
            ),
            (
                head + "args:\n  - {name: r}\nsteps:\n  - sudo: \"echo '{{r}}'\"\n",
                "playbooks/bad.yml:7:11: 'sudo': invalid value '{{r}}': a placeholder is quoted for the shell already"
            ),
            (
                head + "args:\n  - {name: r}\nsteps:\n  - run: echo \"x{{r}}\"\n",
                "playbooks/bad.yml:7:10: 'run': invalid value '{{r}}': a placeholder is quoted for the shell already"
            ),
            (
                head + "steps:\n  - run: echo {{reason}}\n",
                "playbooks/bad.yml:5:10: 'run': invalid value '{{reason}}': 'reason' is not defined here"
            ),
            (
                head + "hosts: {class: alert, host: alert-1}\nsteps:\n  - run: id\n",
                "playbooks/bad.yml:4:8: 'hosts': invalid value 'host, class': give exactly one of host, class, puppet_class"
            ),
            (
                head + "steps:\n  - run: id\n    on: {clas: alert}\n",
                "playbooks/bad.yml:6:10: unknown key 'clas' in on (did you mean 'class'?)"
            ),
            (
                head + "steps:\n  - check: {command: id}\n",
                "playbooks/bad.yml:5:12: missing required key 'as' in check (or set required: true)"
            ),
            (
                head + "steps:\n  - check: {command: id, as: ok, attempts: 0}\n",
                "playbooks/bad.yml:5:44: 'check.attempts': invalid value '0'"
            ),
            (head + "max_hosts: 0\nsteps:\n  - run: id\n", "playbooks/bad.yml:4:12: 'max_hosts': invalid value '0'"),
            (
                head + "let:\n  m: \"{{nope}}\"\nsteps:\n  - run: id\n",
                "playbooks/bad.yml:5:6: 'nope' is not defined by an earlier step"
            ),
        ])
    func loadErrors(_ text: String, _ expected: String) {
        do {
            _ = try PlaybookLoader.parse(text, file: "playbooks/bad.yml")
            Issue.record("loaded: \(text)")
        } catch {
            #expect("\(error)".hasPrefix(expected), "\(error)")
            #expect(!"\(error)".contains("\n"))
        }
    }

    /// A registry from playbooks written to a fresh directory.
    func registry(_ files: [String: String]) throws -> TaskRegistry {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pb-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for (name, text) in files { try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8) }
        return try TaskRegistry.standard(playbookDirectories: [directory])
    }

    @Test("calls are checked when playbooks load: the task exists, its arguments, read-only, no loops")
    func callErrors() throws {
        func error(_ files: [String: String]) -> String {
            do {
                _ = try registry(files)
                return "loaded"
            } catch { return "\(error)" }
        }
        let unknown = error(["a.yml": "name: a\nsummary: s\nchanges: true\nsteps:\n  - call: app.strat:x\n"])
        #expect(
            unknown.contains(
                "a.yml:5:5: 'call.task': invalid value 'app.strat': no such task (did you mean 'app.start'"),
            "\(unknown)")
        let readOnly = error(["a.yml": "name: a\nsummary: s\nchanges: false\nsteps:\n  - call: app.stop:x\n"])
        #expect(
            readOnly.contains(
                "a.yml:5:5: 'call.task': invalid value 'app.stop': it changes hosts but this playbook says changes: false"
            ), "\(readOnly)")
        let loop = error([
            "a.yml": "name: a\nsummary: s\nchanges: true\nsteps:\n  - call: b\n",
            "b.yml": "name: b\nsummary: s\nchanges: true\nsteps:\n  - call: a\n",
        ])
        #expect(loop.contains("calls back into"), "\(loop)")
        let arity = error([
            "a.yml": "name: a\nsummary: s\nchanges: true\nsteps:\n  - call: b\n",
            "b.yml": "name: b\nsummary: s\nchanges: true\nargs:\n  - {name: r}\nsteps:\n  - run: id\n",
        ])
        #expect(arity.contains("a.yml:5:5: 'call.args': invalid value '0 values': b takes b:R"), "\(arity)")
    }

    @Test(
        "a placeholder is one shell word whatever the value holds (a real /bin/sh)",
        arguments: [
            "it's; reboot", "$(reboot)", "`reboot`", "a\"b\\c", "x && shutdown -r now", "${IFS}x", "' || true '", "",
            "*", "-n",
        ])
    func quoting(_ value: String) throws {
        let template = CommandTemplate(text: "printf '[%s]' {{v}} {{v}}", references: ["v"])
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", template.render(["v": value])]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(output == "[\(value)][\(value)]")
    }

    @Test("arguments: positional, NAME=VALUE, defaults, --set, and one-line refusals")
    func binding() throws {
        let registry = try TaskRegistry.standard(playbookDirectories: [playbookDirectory])
        let book = try #require(registry.entries["nagios.schedule_downtime"]?.playbook)
        #expect(
            try bindArguments(word("nagios.schedule_downtime:cache-1"), of: book, settings: [:]) == [
                "hostname": "cache-1", "minutes": "20",
            ])
        #expect(
            try bindArguments(word("nagios.schedule_downtime:cache-1,45"), of: book, settings: [:])["minutes"] == "45")
        #expect(
            try bindArguments(word("nagios.schedule_downtime:minutes=5,hostname=cache-2"), of: book, settings: [:])
                == ["hostname": "cache-2", "minutes": "5"])
        #expect(
            try bindArguments(word("nagios.schedule_downtime"), of: book, settings: ["hostname": "cache-3"])["hostname"]
                == "cache-3")
        for (text, message) in [
            ("nagios.schedule_downtime", "needs an argument: nagios.schedule_downtime:HOSTNAME[,MINUTES]"),
            ("nagios.schedule_downtime:a,1,2", "does not take '2'"),
            ("nagios.schedule_downtime:a,soon", "argument 'minutes' cannot be \"soon\": a whole number"),
            ("nagios.schedule_downtime:a,when=1", "has no option 'when='"),
        ] {
            #expect(throws: TaskError.self) { try bindArguments(word(text), of: book, settings: [:]) }
            do { _ = try bindArguments(word(text), of: book, settings: [:]) } catch {
                #expect("\(error)".contains(message), "\(error)")
                #expect(!"\(error)".contains("\n"))
            }
        }
    }

    /// cache-1, cache-2 and an alert host.
    func inventory(alert: Bool = true) -> Inventory {
        var hosts = [
            FleetHost(name: "cache-1", address: "127.0.0.1", nodeClass: "cache"),
            FleetHost(name: "cache-2", address: "127.0.0.2", nodeClass: "cache"),
        ]
        if alert { hosts.append(FleetHost(name: "alert-1", address: "127.0.0.3", nodeClass: "alert")) }
        return Inventory(name: "production", ssh: SSHSettings(user: "oncall"), hosts: hosts)
    }

    @Test("vm.reboot expands per host (serial): check, message, downtime on the alert host, reboot")
    func expansion() throws {
        let registry = try TaskRegistry.standard(playbookDirectories: [playbookDirectory])
        let inventory = inventory()
        let cache = inventory.hosts.filter { $0.nodeClass == "cache" }
        let planned = try registry.plannedTasks(word("vm.reboot"), hosts: cache, inventory: inventory)
        #expect(
            planned.map { $0.hosts.map(\.name) } == [
                ["cache-1"], ["cache-1"], ["alert-1"], ["cache-1"],
                ["cache-2"], ["cache-2"], ["alert-1"], ["cache-2"],
            ])
        #expect(planned.allSatisfy { $0.task.changesHosts })
        let context = RunContext(inventory: inventory)
        let downtime = planned[2].task.plannedCommands(on: inventory.hosts[2], context: context)
        #expect(
            downtime.count == 1 && downtime[0].contains("cache-1")
                && downtime[0].contains("[when not no_reboot_needed]"), "\(downtime)")
        #expect(
            planned[3].task.plannedCommands(on: cache[0], context: context) == [
                "[when not no_reboot_needed] sudo -n -- /bin/sh -c 'shutdown -r now'"
            ])

        // runs_once: mongo.status runs on the first selected host only; max_hosts refuses two.
        #expect(
            try registry.plannedTasks(word("mongo.status"), hosts: cache, inventory: inventory).map {
                $0.hosts.map(\.name)
            } == [["cache-1"]])
        #expect(throws: TaskError.self) {
            try registry.plannedTasks(word("mongo.force_resync"), hosts: cache, inventory: inventory)
        }
    }

    @Test("a pin the inventory cannot satisfy is one located line naming the playbook")
    func missingPin() throws {
        let registry = try TaskRegistry.standard(playbookDirectories: [playbookDirectory])
        do {
            _ = try registry.plannedTasks(
                word("vm.force_reboot"), hosts: [inventory(alert: false).hosts[0]], inventory: inventory(alert: false))
            Issue.record("planned without an alert host")
        } catch {
            #expect(
                "\(error)".contains("'nagios.schedule_downtime' runs on class: alert (first host only) ("), "\(error)")
            #expect(
                "\(error)".contains(
                    "nagios.schedule_downtime.yml:13:16), but inventory 'production' has no host of class 'alert': add that host to the inventory"
                ), "\(error)")
            #expect(!"\(error)".contains("\n"))
        }
        #expect(
            registry.pinnedTaskNames.isSuperset(of: [
                "nagios.schedule_downtime", "puppet.lookup_hieradata", "vm.host_key",
            ]))
    }

    @Test("at least 80 fabric-scripts tasks, grouped by module")
    func catalogueSize() throws {
        let registry = try TaskRegistry.standard(playbookDirectories: [playbookDirectory])
        let modules = [
            "app", "puppet", "vm", "incident", "nginx", "cache", "apt", "nagios", "locksmith", "mongo", "mysql",
            "rabbitmq", "elasticsearch", "ntp",
        ]
        let fabric = registry.descriptors.filter {
            modules.contains($0.module) || ["do", "sdo", "hosts", "classes", "help"].contains($0.name)
        }
        #expect(fabric.count >= 80, "\(fabric.count)")
        let groups = TaskDescriptor.groupedByModule(registry.descriptors)
        #expect(groups.first?.module == "")
        #expect(groups.first { $0.module == "puppet" }?.tasks.map(\.name).prefix(2) == ["puppet", "puppet.agent"])
    }
}
