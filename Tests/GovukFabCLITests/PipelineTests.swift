import Fleet
import Foundation
import Synchronization
import TestFleet
import Testing

@testable import GovukFabCLI

/// The console's streams as buffers, and answers for its prompts.
final class CapturedIO: Sendable {
    private let out = Mutex("")
    private let err = Mutex("")
    private let answers: Mutex<[String]>
    /// Called on each stderr write (to wait for a run to reach a point).
    private let onError: @Sendable (String) -> Void

    init(answers: [String] = [], onError: @escaping @Sendable (String) -> Void = { _ in }) {
        self.answers = Mutex(answers)
        self.onError = onError
    }

    var io: ConsoleIO {
        ConsoleIO(
            output: { text in self.out.withLock { $0 += text } },
            errorOutput: { text in
                self.err.withLock { $0 += text }
                self.onError(text)
            },
            readLine: { self.answers.withLock { $0.isEmpty ? nil : $0.removeFirst() } })
    }

    var stdout: String { out.withLock { $0 } }
    var stderr: String { err.withLock { $0 } }
}

/// The whole govuk-fab pipeline (arguments → ArgumentParser → session → console) run in this
/// process with a pinned local environment, so no test depends on who runs it or on a terminal.
enum Pipeline {
    static func run(
        _ arguments: [String], local: LocalEnvironment, answers: [String] = [],
        interrupts: InterruptSource = .none
    ) async -> CommandRunResult {
        let captured = CapturedIO(answers: answers)
        let status = await GovukFab.main(arguments, local: local, io: captured.io, interrupts: interrupts)
        return CommandRunResult(status: status, stdout: captured.stdout, stderr: captured.stderr)
    }

    /// An operator called `operator` with a home of their own and no agent, not on a terminal.
    static func local(directory: String, terminal: Bool = false) -> LocalEnvironment {
        LocalEnvironment(
            user: "operator", userID: 1000, homeDirectory: directory + "/home", hostName: "workstation",
            variables: [
                "XDG_STATE_HOME": directory + "/state", "XDG_CACHE_HOME": directory + "/cache", "NO_COLOR": "1",
            ],
            stdinIsTerminal: terminal, stdoutIsTerminal: false)
    }

    static func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "govuk-fab-pipeline-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(atPath: path + "/home", withIntermediateDirectories: true)
        return path
    }
}

@Suite("The CLI pipeline in process: listings, errors and dry runs")
struct PipelineTests {
    /// Three hosts that are never contacted (listings and dry runs connect to nothing); no `user:`.
    static func offlineInventory(in directory: String, confirm: Bool = false) throws -> String {
        let path = directory + "/offline.yml"
        try """
        name: offline
        confirm_changes: \(confirm)
        hosts:
          - {name: cache-1, address: 127.0.0.1, node_class: cache, puppet_classes: [Gor]}
          - {name: backend-2, address: 127.0.0.2, node_class: backend, puppet_classes: [Gor, Nginx]}
          - {name: backend-1, address: 127.0.0.3, node_class: backend, puppet_classes: [Nginx]}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("--list and help:TASK print the task list and one task's help on stdout, exit 0")
    func listings() async throws {
        let directory = try Pipeline.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let local = Pipeline.local(directory: directory)
        let list = await Pipeline.run(["--list"], local: local)
        #expect(list.status == 0, "\(list)")
        #expect(list.stdout.hasPrefix("Available tasks:"), "\(list)")
        #expect(list.stdout.contains("recover-goreplay") && list.stderr.isEmpty, "\(list)")

        let help = await Pipeline.run(["help:sdo"], local: local)
        #expect(help.status == 0, "\(help)")
        #expect(help.stdout.hasPrefix("sdo:COMMAND\n"), "\(help)")

        let unknown = await Pipeline.run(["-d", "sdoo"], local: local)
        #expect(unknown.status == 2, "\(unknown)")
        #expect(
            unknown.stderr.contains("govuk-fab: error: no task named 'sdoo'") && unknown.stderr.contains("sdo"),
            "\(unknown)")
    }

    @Test("hosts and classes list the inventory; --json gives one event per line with its time")
    func hostsAndClasses() async throws {
        let directory = try Pipeline.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let inventory = try Self.offlineInventory(in: directory)
        let local = Pipeline.local(directory: directory)

        let hosts = await Pipeline.run(["--inventory", inventory, "offline", "all", "hosts"], local: local)
        #expect(hosts.status == 0, "\(hosts)")
        #expect(hosts.stdout == "backend-1\nbackend-2\ncache-1\n", "\(hosts)")

        let classes = await Pipeline.run(["--inventory", inventory, "offline", "classes"], local: local)
        #expect(classes.status == 0, "\(classes)")
        #expect(
            classes.stdout.contains("  backend (2 hosts)") && classes.stdout.contains("  nginx (2 hosts)"), "\(classes)"
        )

        let json = await Pipeline.run(
            ["--json", "--inventory", inventory, "offline", "puppet_class:gor", "hosts"], local: local)
        #expect(json.status == 0, "\(json)")
        let events = json.jsonEvents
        #expect(events.map { $0["name"] as? String } == ["backend-2", "cache-1"], "\(json)")
        #expect(events.allSatisfy { $0["event"] as? String == "host" && $0["time"] is String }, "\(json)")
    }

    @Test("usage errors are one line on stderr with exit 2, and --json adds an error event")
    func usageErrors() async throws {
        let directory = try Pipeline.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let local = Pipeline.local(directory: directory)

        let contradiction = await Pipeline.run(["--warn-only", "--abort-on-failure", "offline", "hosts"], local: local)
        #expect(contradiction.status == 2, "\(contradiction)")
        #expect(
            contradiction.stderr.hasPrefix("govuk-fab: error: --warn-only and --abort-on-failure contradict"),
            "\(contradiction)")
        #expect(
            contradiction.stderr.split(separator: "\n").count == 1 && contradiction.stdout.isEmpty, "\(contradiction)")

        let missing = await Pipeline.run([], local: local)
        #expect(missing.status == 2 && missing.stderr.contains("missing ENVIRONMENT"), "\(missing)")

        let inventory = try Self.offlineInventory(in: directory)
        let badWord = await Pipeline.run(
            ["--json", "--inventory", inventory, "offline", "all", "nosuchtask"], local: local)
        #expect(badWord.status == 2, "\(badWord)")
        let error = try #require(badWord.jsonEvents.first, "\(badWord)")
        #expect(error["event"] as? String == "error" && error["exit_code"] as? Int == 2, "\(badWord)")
        #expect(badWord.stderr.contains("nosuchtask"), "\(badWord)")

        let noHosts = await Pipeline.run(
            ["--inventory", inventory, "offline", "class:nosuch", "do:true"], local: local)
        #expect(noHosts.status == FleetExitCode.noHostsMatched.rawValue, "\(noHosts)")
    }

    @Test("--dry-run shows the login user the run uses: ssh_config's User beats the local user")
    func dryRunLoginUser() async throws {
        let directory = try Pipeline.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let inventory = try Self.offlineInventory(in: directory)
        let local = Pipeline.local(directory: directory)
        let config = directory + "/ssh_config"
        try "Host cache-*\n  User root\n".write(toFile: config, atomically: true, encoding: .utf8)

        let arguments = ["--dry-run", "--inventory", inventory, "offline", "-H", "cache-1,backend-1", "sdo:id"]
        let withConfig = await Pipeline.run(arguments + ["--ssh-config-path", config], local: local)
        #expect(withConfig.status == 0, "\(withConfig)")
        let lines = withConfig.stdout.split(separator: "\n")
        // cache-1 logs in as root (ssh_config), so no sudo; backend-1 as the local user, through sudo.
        #expect(lines.contains { $0.contains("cache-1") && $0.hasSuffix("would run: id") }, "\(withConfig)")
        #expect(lines.contains { $0.contains("backend-1") && $0.contains("would run: sudo -n") }, "\(withConfig)")

        let withoutConfig = await Pipeline.run(arguments + ["--ssh-config-path", "none"], local: local)
        #expect(withoutConfig.status == 0, "\(withoutConfig)")
        #expect(!withoutConfig.stdout.contains("would run: id\n"), "\(withoutConfig)")
    }

    @Test("a change needing confirmation without a terminal is refused (exit 3) before any host is touched")
    func refusedWithoutTerminal() async throws {
        let directory = try Pipeline.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let inventory = try Self.offlineInventory(in: directory, confirm: true)
        let result = await Pipeline.run(
            ["--inventory", inventory, "offline", "all", "sdo:true"], local: Pipeline.local(directory: directory))
        #expect(result.status == 3, "\(result)")
        #expect(result.stderr.contains("govuk-fab: error:") && result.stdout.isEmpty, "\(result)")
        #expect(
            !FileManager.default.fileExists(atPath: directory + "/state/govuk-fab/audit.jsonl"),
            "nothing was run, nothing audited")
    }
}

@Suite(
    "The CLI pipeline in process on a real fleet", .serialized,
    .enabled(if: TestFleet.isSupported, "needs root and sshd"))
final class PipelineFleetTests {
    let fleet: TestFleet
    let directory: String
    let inventory: String

    init() throws {
        fleet = try TestFleet.start(TestFleetOptions(hostCount: 2, namePrefix: "pipe"))
        directory = fleet.workDirectory + "/pipeline"
        try FileManager.default.createDirectory(atPath: directory + "/home", withIntermediateDirectories: true)
        inventory = directory + "/pipe.yml"
        var yaml = """
            name: pipe
            ssh:
              user: \(fleet.user)
              identity_files: [\(fleet.clientKeyPath)]
              known_hosts: [\(fleet.knownHostsPath)]
              connect_timeout: 20s
              command_timeout: 60s
            confirm_changes: true
            hosts:

            """
        for host in fleet.hosts {
            yaml += "  - {name: \(host.name), address: \(host.address), port: \(host.port), node_class: pipe}\n"
        }
        try yaml.write(toFile: inventory, atomically: true, encoding: .utf8)
    }

    deinit { fleet.stop() }

    var auditLines: [String] {
        ((try? String(contentsOfFile: directory + "/state/govuk-fab/audit.jsonl", encoding: .utf8)) ?? "")
            .split(separator: "\n").map(String.init)
    }

    /// A file only this test writes, on each host's private /etc/govuk-fab.
    let marker = "/etc/govuk-fab/pipeline-marker"

    func markerExists(on host: TestFleetHost) -> Bool { FileManager.default.fileExists(atPath: host.realPath(marker)) }

    @Test("on a terminal the prompt is asked on stderr: 'no' runs nothing (exit 3), 'yes' runs on every host")
    func confirmation() async throws {
        let local = Pipeline.local(directory: directory, terminal: true)
        let arguments = [
            "--inventory", inventory, "pipe", "all", "sdo:mkdir -p /etc/govuk-fab && touch \(marker) && hostname",
        ]

        let declined = await Pipeline.run(arguments, local: local, answers: ["no"])
        #expect(declined.status == 3, "\(declined)")
        #expect(declined.stderr.contains("not confirmed; nothing was run"), "\(declined)")
        #expect(auditLines.isEmpty, "\(auditLines)")
        for host in fleet.hosts { #expect(!markerExists(on: host)) }

        let accepted = await Pipeline.run(arguments, local: local, answers: ["yes"])
        #expect(accepted.status == 0, "\(accepted)")
        // The prompt went to stderr before the run, the output to stdout.
        #expect(!accepted.stderr.isEmpty && !accepted.stderr.contains("error"), "\(accepted)")
        for host in fleet.hosts {
            #expect(accepted.stdout.contains(host.name), "\(accepted)")
            #expect(markerExists(on: host))
        }
        #expect(auditLines.count == 2 && auditLines[0].contains("\"started\""), "\(auditLines)")
    }

    @Test("--json --yes: run_started, per-host events and a summary, each with its time; the audit records the run")
    func jsonRun() async throws {
        let result = await Pipeline.run(
            ["--json", "--yes", "--inventory", inventory, "pipe", "all", "do:hostname"],
            local: Pipeline.local(directory: directory))
        #expect(result.status == 0, "\(result)")
        let events = result.jsonEvents
        #expect(events.count == result.stdout.split(separator: "\n").count, "every stdout line is JSON: \(result)")
        #expect(events.first?["event"] as? String == "run_started", "\(result)")
        #expect(events.last?["event"] as? String == "summary" && events.last?["exit_code"] as? Int == 0, "\(result)")
        #expect(events.filter { $0["event"] as? String == "host_finished" }.count == 2, "\(result)")
        #expect(events.allSatisfy { $0["time"] is String }, "\(result)")
    }

    @Test("an interrupt from the injected source stops the remote commands: exit 130, the audit finished")
    func interrupt() async throws {
        let interrupt = Mutex<(@Sendable () -> Void)?>(nil)
        let source = InterruptSource { _, onInterrupt in
            interrupt.withLock { $0 = onInterrupt }
            return { interrupt.withLock { $0 = nil } }
        }
        let (inventory, local) = (self.inventory, Pipeline.local(directory: directory))
        let run = Task {
            await Pipeline.run(
                ["--yes", "--inventory", inventory, "pipe", "all", "do:sleep 60"],
                local: local, interrupts: source)
        }
        // Bounded wait for both hosts' sleep to start, then Ctrl-C.
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let running = try fleet.hosts.allSatisfy {
                try fleet.run(on: $0.name, "pgrep -x sleep >/dev/null").status == 0
            }
            if running { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let started = ContinuousClock.now
        interrupt.withLock { $0 }?()
        let result = await run.value
        #expect(result.status == 130, "\(result)")
        #expect(ContinuousClock.now - started < .seconds(30), "stopped well before the 60 s sleep ended")
        #expect(auditLines.last?.contains("\"finished\"") == true, "\(auditLines)")
    }
}
