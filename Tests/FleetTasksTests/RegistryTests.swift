import Fleet
import Foundation
import Testing

@testable import FleetTasks

/// The package root, from this file's path (Tests/FleetTasksTests/…).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path
let playbookDirectory = packageRoot + "/playbooks"

func word(_ text: String) throws -> TaskInvocation {
    guard case .task(let invocation) = try FabricCommandLine.parseWord(text) else {
        throw TestFailure("'\(text)' is not a task word")
    }
    return invocation
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func testInventory(user: String = "deploy", manager: ServiceManager = .upstart) -> Inventory {
    Inventory(
        name: "test", ssh: SSHSettings(user: user),
        services: ServiceSettings(manager: manager, aliases: ["goreplay": ["goreplay", "gor"]]),
        hosts: [FleetHost(name: "gor-1", address: "127.0.0.1")])
}

@Suite("Task registry")
struct RegistryTests {
    let registry: TaskRegistry

    init() throws {
        registry = try TaskRegistry.standard(playbookDirectories: [playbookDirectory])
    }

    @Test("lists built-ins and playbooks sorted, host-less tasks marked")
    func listing() throws {
        let names = registry.descriptors.map(\.name)
        #expect(names == names.sorted())
        for name in [
            "do", "sdo", "app.start", "app.stop", "app.restart", "app.reload", "app.status",
            "recover-goreplay", "check-goreplay", "data-sync.start", "data-sync.finish",
            "hosts", "classes", "help", "goreplay.status", "goreplay.restart",
        ] {
            #expect(names.contains(name), "\(name) missing")
        }
        #expect(registry.descriptor(named: "hosts")?.runsOnHosts == false)
        #expect(registry.descriptor(named: "app.status")?.changesHosts == false)
        #expect(registry.descriptor(named: "app.start")?.changesHosts == true)
        #expect(registry.descriptor(named: "check-goreplay")?.changesHosts == false)
        #expect(registry.descriptor(named: "goreplay.status")?.source == "playbooks/goreplay.status.yml")
        #expect(registry.descriptor(named: "goreplay.status")?.changesHosts == false)
    }

    @Test("each built-in task made from a word carries the descriptor it is listed under")
    func builtInsCarryTheirDescriptor() throws {
        let inventory = testInventory()
        let words = [
            "do:uptime", "sdo:uptime", "app.start:nginx", "app.stop:nginx", "app.restart:nginx",
            "app.reload:nginx", "app.status:nginx", "recover-goreplay", "check-goreplay", "replay-report",
            "data-sync.start", "data-sync.finish", "deploy-goreplay:binary=/nonexistent", "goreplay.config",
        ]
        let built = Set(TaskRegistry.builtInTypes.flatMap { $0.descriptors.map(\.name) })
        #expect(built == Set(words.map { String($0.prefix { $0 != ":" }) }), "a built-in without a word here")
        for text in words {
            let invocation = try word(text)
            let task = try #require(try registry.makeTask(invocation, inventory: inventory) as? any DescribedTask)
            let listed = try #require(registry.descriptor(named: invocation.name))
            #expect(task.descriptor == listed, "\(text)")
            #expect(task.changesHosts == listed.changesHosts, "\(text)")
        }
        // The usage in an argument error is the listed one.
        #expect(throws: TaskError(word: "sdo", problem: .missingArgument(task: "sdo", usage: "sdo:COMMAND"))) {
            try registry.makeTask(try word("sdo"), inventory: inventory)
        }
    }

    @Test("docs/tasks.md is the generated reference")
    func docsMatch() throws {
        let path = packageRoot + "/docs/tasks.md"
        let expected = registry.markdownReference()
        if ProcessInfo.processInfo.environment["GOVUK_FAB_WRITE_DOCS"] == "1" {
            try expected.write(toFile: path, atomically: true, encoding: .utf8)
        }
        let actual = try String(contentsOfFile: path, encoding: .utf8)
        #expect(actual == expected, "regenerate with GOVUK_FAB_WRITE_DOCS=1 swift test --filter docsMatch")
    }

    @Test("unknown task suggests near names")
    func unknownTask() throws {
        #expect(throws: TaskError.self) {
            try registry.makeTask(try word("app.strat:goreplay"), inventory: testInventory())
        }
        let typo = try word("app.strat:goreplay")
        do {
            _ = try registry.makeTask(typo, inventory: testInventory())
        } catch {
            #expect(error.description.contains("unknown task 'app.strat'"))
            #expect(error.description.contains("'app.start'"))
            #expect(!error.description.contains("\n"))
        }
    }

    @Test(
        "missing, extra and keyword arguments are one-line errors with a hint",
        arguments: [
            ("app.start", "needs an argument: app.start:NAME"),
            ("app.start:a,b", "does not take 'b'"),
            ("app.start:name=x", "has no option 'name='"),
            ("recover-goreplay:now", "does not take 'now'"),
            ("check-goreplay:x=1", "has no option 'x='"),
            ("check-goreplay:now", "does not take 'now'"),
            ("check-goreplay:metrics=70000", "option 'metrics=70000': expected a port from 1 to 65535"),
            ("sdo", "needs an argument: sdo:COMMAND"),
            ("hosts", "handled by the command line"),
        ])
    func argumentErrors(text: String, expected: String) throws {
        let invocation = try word(text)
        do {
            _ = try registry.makeTask(invocation, inventory: testInventory())
            Issue.record("\(text) was accepted")
        } catch {
            #expect(error.description.contains(expected), "\(error)")
            #expect(!error.description.contains("\n"))
        }
    }

    @Test(
        "service names are validated, never pasted raw",
        arguments: [
            "goreplay;reboot", "$(id)", "-rf", "a b", "gor`x`", ".hidden", "x'y",
        ])
    func invalidServiceName(name: String) throws {
        let invocation = TaskInvocation(name: "app.start", positional: [name], raw: "app.start:\(name)")
        do {
            _ = try registry.makeTask(invocation, inventory: testInventory())
            Issue.record("\(name) was accepted")
        } catch {
            guard case .invalidServiceName = error.problem else {
                Issue.record("wrong error \(error)")
                return
            }
            #expect(error.description.contains("invalid service name"))
        }
    }

    @Test("an alias that is not a valid name is refused too")
    func invalidAlias() throws {
        var inventory = testInventory()
        inventory.services.aliases["goreplay"] = ["goreplay", "gor;rm -rf /"]
        #expect(throws: TaskError.self) { try registry.makeTask(try word("app.start:goreplay"), inventory: inventory) }
    }

    @Test("sdo dry-run command: sudo -n, the command quoted exactly once")
    func sdoDryRun() throws {
        let inventory = testInventory()
        let host = inventory.hosts[0]
        let context = RunContext(inventory: inventory, dryRun: true)
        let sdo = try registry.makeTask(
            try word("sdo:rm /etc/govuk/env.d/FACTER_data_sync_in_progress"), inventory: inventory)
        #expect(
            sdo.plannedCommands(on: host, context: context)
                == ["sudo -n -- /bin/sh -c 'rm /etc/govuk/env.d/FACTER_data_sync_in_progress'"])
        let quoting = try registry.makeTask(try word("sdo:echo 'it''s' \"$HOME\",done"), inventory: inventory)
        #expect(
            quoting.plannedCommands(on: host, context: context)
                == [#"sudo -n -- /bin/sh -c 'echo '\''it'\'''\''s'\'' "$HOME",done'"#])
        let plain = try registry.makeTask(try word("do:uptime"), inventory: inventory)
        #expect(plain.plannedCommands(on: host, context: context) == ["uptime"])
        #expect(sdo.changesHosts)

        // As root, sudo is skipped (HostContext.execute does the same).
        let rootInventory = testInventory(user: "root")
        let asRoot = try registry.makeTask(try word("sdo:id -u"), inventory: rootInventory)
        #expect(
            asRoot.plannedCommands(on: rootInventory.hosts[0], context: RunContext(inventory: rootInventory)) == [
                "id -u"
            ])
    }

    @Test("app.start resolves aliases in one command, first existing name wins")
    func appStartResolution() throws {
        let inventory = testInventory(user: "root", manager: .upstart)
        let task = try registry.makeTask(try word("app.start:goreplay"), inventory: inventory)
        let command = try #require(
            task.plannedCommands(on: inventory.hosts[0], context: RunContext(inventory: inventory)).first)
        #expect(command.hasPrefix("if test -f /etc/init/goreplay.conf; then ( "))
        #expect(
            command.contains(
                "elif test -f /etc/init/gor.conf; then echo 'goreplay is service '\\''gor'\\'' on this host'; ( "))
        #expect(command.hasSuffix("else echo 'no upstart service named goreplay, gor on this host' >&2; exit 5; fi"))
        // Starting a running upstart job succeeds.
        #expect(command.contains("if initctl status gor | grep -q start/running; then echo \"gor already running\""))

        let status = try registry.makeTask(try word("app.status:nginx"), inventory: inventory)
        #expect(!status.changesHosts)
        let statusCommand = try #require(
            status.plannedCommands(on: inventory.hosts[0], context: RunContext(inventory: inventory)).first)
        #expect(statusCommand.hasPrefix("if test -f /etc/init/nginx.conf; then ( "))
        #expect(!statusCommand.contains("elif"))
    }

    @Test("plugin lines are check_procs's")
    func pluginLines() {
        let check = CheckGoReplayTask()
        #expect(
            check.pluginLine(count: 0) == (
                .critical, "PROCS CRITICAL: 0 processes with command name 'goreplay' | procs=0;;1:;0;"
            ))
        #expect(
            check.pluginLine(count: 1) == (.ok, "PROCS OK: 1 process with command name 'goreplay' | procs=1;;1:;0;"))
        #expect(
            check.pluginLine(count: 3) == (.ok, "PROCS OK: 3 processes with command name 'goreplay' | procs=3;;1:;0;"))
        let outcomes = [
            TaskOutcome(hostOutcome: .exited(status: 0), checkStatus: .ok),
            TaskOutcome(hostOutcome: .exited(status: 2), checkStatus: .critical),
        ]
        #expect(check.exitStatus(for: outcomes) == 2)
        #expect(check.exitStatus(for: outcomes + [TaskOutcome(hostOutcome: .connectionFailed("refused"))]) == 3)
        #expect(check.exitStatus(for: [TaskOutcome(hostOutcome: .exited(status: 0), checkStatus: .ok)]) == 0)
    }

    @Test("marker emptiness follows envdir: a lone newline is empty, 'true' is not")
    func markerEmptiness() {
        #expect(MarkerState.present(content: "", owner: "root:root", mode: "644").isEmpty)
        #expect(MarkerState.present(content: "\n", owner: "root:root", mode: "644").isEmpty)
        #expect(!MarkerState.present(content: "true\n", owner: "root:root", mode: "644").isEmpty)
        #expect(MarkerState.present(content: "true\n", owner: "root:root", mode: "644").shownValue == "'true'")
        #expect(!MarkerState.missing.isEmpty)
    }
}

@Suite("Data-sync window refusal")
struct WindowTests {
    /// 23:30 and 12:00 London time in winter (GMT).
    static let night = TimeSource.fixed(Date(timeIntervalSince1970: 1_764_113_400)) // 2025-11-25T23:30:00Z
    static let noon = TimeSource.fixed(Date(timeIntervalSince1970: 1_764_072_000)) // 2025-11-25T12:00:00Z

    @Test("recover-goreplay refuses inside the window, saying why and what to do; --force and --dry-run pass")
    func refusal() throws {
        let task = RecoverGoReplayTask()
        let inventory = testInventory()
        do {
            try task.preflight(RunContext(inventory: inventory, time: Self.night))
            Issue.record("not refused at 23:30")
        } catch {
            #expect(error.description.contains("inside the data-sync window (23:00–05:30 Europe/London; now 23:30 GMT"))
            #expect(error.description.contains("replaying now causes errors"))
            #expect(error.description.contains("--force"))
        }
        try task.preflight(RunContext(inventory: inventory, time: Self.night, force: true))
        try task.preflight(RunContext(inventory: inventory, time: Self.night, dryRun: true))
        try task.preflight(RunContext(inventory: inventory, time: Self.noon))
        #expect(throws: TaskRefusal.self) {
            try DataSyncTask(phase: .finish).preflight(RunContext(inventory: inventory, time: Self.night))
        }
        try DataSyncTask(phase: .start).preflight(RunContext(inventory: inventory, time: Self.night))
    }

    @Test("check-goreplay inside the window: OK without connecting; --force checks")
    func checkInsideWindow() throws {
        let inventory = testInventory()
        let check = CheckGoReplayTask()
        let outcome = try #require(
            check.outcomeWithoutConnecting(
                on: inventory.hosts[0], context: RunContext(inventory: inventory, time: Self.night)))
        #expect(outcome.checkStatus == .ok)
        #expect(outcome.message?.hasPrefix("PROCS OK: data sync in progress") == true)
        #expect(
            check.outcomeWithoutConnecting(
                on: inventory.hosts[0], context: RunContext(inventory: inventory, time: Self.noon)) == nil)
        #expect(
            check.outcomeWithoutConnecting(
                on: inventory.hosts[0], context: RunContext(inventory: inventory, time: Self.night, force: true)) == nil
        )
    }
}
