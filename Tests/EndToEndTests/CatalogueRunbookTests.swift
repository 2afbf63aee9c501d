import Foundation
import TestFleet
import Testing

/// The runbook lines issue 14 names, unchanged, and arguments that try to inject shell.
/// Part of the serialized catalogue suite: they share its fleet and stubs.
extension CatalogueTests {
    struct RunbookLine: Sendable, CustomTestStringConvertible {
        var environment = "production"
        var words: [String]
        var setup: @Sendable (CatalogueFleet) throws -> Void = { _ in }
        var calls: [ExpectedCall]
        var output: [String] = []
        var testDescription: String { ([environment] + words).joined(separator: " ") }
    }

    static let runbookLines: [RunbookLine] = [
        RunbookLine(
            words: ["class:backend", "puppet.enable", "puppet"],
            calls: [
                sudoCall("backend-1", "govuk_puppet", "--test", "--enable"),
                sudoCall("backend-1", "govuk_puppet", "--test"),
            ]),
        RunbookLine(
            words: ["class:cache", "incident.fail_to_mirror"],
            calls: ["cache-1", "cache-2"].flatMap {
                [
                    sudoCall(
                        $0, "govuk_puppet", "--test", "--disable", "Fabric fail_to_mirror task invoked (by {user})"),
                    sudoCall($0, "service", "nginx", "stop"),
                ]
            }),
        RunbookLine(
            words: ["-H", "cache-1", "vm.reboot"],
            setup: { try $0.behave("cache-1", "check_reboot_required", exit: 1) },
            calls: [
                plainCall("cache-1", "check_reboot_required", "30", "0"), sudoCall("cache-1", "shutdown", "-r", "now"),
            ]),
        RunbookLine(
            words: ["all", "locksmith.status"],
            calls: CatalogueFleet.layout.map {
                plainCall($0.name, "locksmithctl", "-endpoint=http://etcd.cluster:2379", "status")
            }),
        RunbookLine(
            words: ["-H", "backend-1", "app.respawn_large_unicorns:publisher"], setup: { try startUnicorn($0) },
            calls: [], output: ["sent QUIT to worker"]),
        RunbookLine(words: ["all", "apt.packages_with_reboots"], calls: []),
        RunbookLine(environment: "staging", words: ["class:cache", "vm.uptime"], calls: [], output: ["load average"]),
    ]

    /// A process that looks like a unicorn master (argv[0] `unicorn master`) with two
    /// workers, started over SSH so it lives in backend-1's namespaces; pid in app.pid.
    static func startUnicorn(_ fleet: CatalogueFleet) throws {
        let directory = fleet.realPath("backend-1", "/run/publisher")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        chmod(directory, 0o1777)
        let host = try #require(fleet.fleet.host(named: fleet.fleetName("backend-1")))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ssh")
        // Background jobs of a shell ignore QUIT; the workers restore its default action.
        let worker =
            "python3 -c \\\"import signal, time; signal.signal(signal.SIGQUIT, signal.SIG_DFL); time.sleep(600)\\\""
        process.arguments =
            fleet.fleet.sshArguments(for: host) + [
                "setsid bash -c 'echo $$ >/run/publisher/app.pid; exec -a \"unicorn master\" bash -c \"\(worker) & \(worker) & wait\"' "
                    + "</dev/null >/dev/null 2>&1 &"
            ]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        // Bounded wait for the two workers.
        for _ in 0..<50 {
            if workers(fleet).count == 2 { return }
            usleep(100_000)
        }
        Issue.record("the fake unicorn did not start two workers")
    }

    static func unicornPid(_ fleet: CatalogueFleet) -> String? {
        fleet.read("backend-1", "/run/publisher/app.pid")?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func workers(_ fleet: CatalogueFleet) -> [String] {
        guard let pid = unicornPid(fleet),
            let output = try? fleet.fleet.run(on: fleet.fleetName("backend-1"), "pgrep -P \(pid)").output
        else { return [] }
        return output.split(separator: "\n").map(String.init)
    }

    static func stopUnicorn(_ fleet: CatalogueFleet) {
        guard let pid = unicornPid(fleet), pid.allSatisfy(\.isNumber) else { return }
        _ = try? fleet.fleet.run(on: fleet.fleetName("backend-1"), "pkill -P \(pid); kill \(pid)")
        try? FileManager.default.removeItem(atPath: fleet.realPath("backend-1", "/run/publisher/app.pid"))
    }

    @Test("issue 14's runbook lines run unchanged: --dry-run touches nothing, then for real", arguments: runbookLines)
    func runbookLine(_ line: RunbookLine) async throws {
        let fleet = try sharedCatalogueFleet.get()
        try fleet.reset()
        try line.setup(fleet)
        defer { if line.words.contains(where: { $0.hasPrefix("app.respawn") }) { Self.stopUnicorn(fleet) } }

        let dry = try await fleet.fab(line.words + ["--dry-run"], environment: line.environment)
        #expect(dry.status == 0, "\(dry)")
        #expect(!dry.stdout.contains("unknown task") && !dry.stderr.contains("unknown task"))
        #expect(try fleet.calls().isEmpty, "a dry run ran host commands")

        let before = fleet.auditLines.count
        let real = try await fleet.fab(line.words, environment: line.environment)
        #expect(real.status == 0, "\(real)")
        for text in line.output { #expect((real.stdout + real.stderr).contains(text), "missing \(text) in \(real)") }
        let actual = try fleet.calls()
        for host in Set(actual.keys).union(line.calls.map(\.host)).sorted() {
            let got = actual[host] ?? []
            let wanted = line.calls.filter { $0.host == host }
            #expect(
                got.count == wanted.count && zip(got, wanted).allSatisfy { $1.matches($0, user: fleet.fleet.user) },
                "\(host): ran \(got) wanted \(wanted)")
        }
        if line.words.contains(where: { $0.hasPrefix("app.respawn") }) {
            #expect(Self.workers(fleet).count == 1, "one unicorn worker was sent QUIT")
        }
        // The audit log records the run, as for built-in tasks.
        let audit = fleet.auditLines.dropFirst(before)
        #expect(audit.contains { $0.contains(line.words.last!) }, "\(audit)")
    }

    @Test(
        "a playbook argument never reaches the shell as syntax",
        arguments: [
            "it's; reboot", "$(reboot)", "`reboot`", "a\"b\\c", "x && shutdown -r now", "${IFS}reboot",
            "' || poweroff '",
        ])
    func injection(_ reason: String) async throws {
        let fleet = try sharedCatalogueFleet.get()
        try fleet.reset()
        let run = try await fleet.fab(["-H", "backend-1", "puppet.disable:\(reason)"])
        #expect(run.status == 0, "\(run)")
        let calls = try fleet.calls()
        #expect(calls.keys.sorted() == ["backend-1"])
        let only = try #require(calls["backend-1"])
        #expect(
            only.count == 1
                && sudoCall("backend-1", "govuk_puppet", "--test", "--disable", "\(reason) (by {user})")
                    .matches(only[0], user: fleet.fleet.user),
            "\(only)")
    }

    @Test(
        "newlines and words that are not words are refused before any host is touched",
        arguments: [
            (["-H", "backend-1", "puppet.disable:first line\nreboot"], "control characters"),
            (["-H", "backend-1", "locksmith.unlock:a;reboot"], "one word"),
            (["-H", "backend-1", "nagios.schedule_downtime:cache-1,20;reboot"], "a whole number"),
            (["-H", "backend-1", "app.setenv:publisher,BAD NAME,x"], "one word"),
            (["-H", "backend-1", "app.setenv:publisher,1BAD,x"], "must match"),
            (["-H", "backend-1", "puppet.disable"], "needs an argument"),
            (["-H", "backend-1", "mongo.step_down_primary:1,2"], "does not take"),
        ])
    func refusedArguments(_ words: [String], _ message: String) async throws {
        let fleet = try sharedCatalogueFleet.get()
        try fleet.reset()
        let run = try await fleet.fab(words)
        #expect(run.status == 2, "\(run)")
        let errorLines = run.stderr.split(separator: "\n").filter { $0.contains("error") }
        #expect(errorLines.count == 1 && errorLines[0].contains(message), "\(run)")
        #expect(try fleet.calls().isEmpty)
    }

    @Test("a step pinned with on: runs on the alert host once per selected host, between the others")
    func pinnedStep() async throws {
        let fleet = try sharedCatalogueFleet.get()
        try fleet.reset()
        let directory = fleet.directory + "/extra-playbooks"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try """
        name: test.pinned_step
        summary: before on each host, a note on the alert host per host, after on each host
        changes: true
        steps:
          - run: facter before
          - run: facter note-for {{target}} from {{host}}
            on: {class: alert, once: true}
          - run: facter after
        """.write(toFile: directory + "/test.pinned_step.yml", atomically: true, encoding: .utf8)
        var environment = ["GOVUK_FAB_PLAYBOOK_DIR": directory, "XDG_STATE_HOME": fleet.directory + "/state"]
        environment["NO_COLOR"] = "1"
        let run = try await FabRun.run(
            ["--inventory", fleet.inventoryPath, "--yes", "production", "class:cache", "test.pinned_step"],
            environment: environment, directory: fleet.directory)
        #expect(run.status == 0, "\(run)")
        let calls = try fleet.stubs.calls(on: CatalogueFleet.layout.map { fleet.fleetName($0.name) })
        let lines = calls.map { "\($0.host) \(([$0.call.command] + $0.call.arguments).joined(separator: " "))" }
        let cache1 = fleet.fleetName("cache-1")
        let cache2 = fleet.fleetName("cache-2")
        let alert = fleet.fleetName("alert-1")
        #expect(Set(lines.prefix(2)) == ["\(cache1) facter before", "\(cache2) facter before"], "\(lines)")
        #expect(
            Array(lines.dropFirst(2).prefix(2)) == [
                "\(alert) facter note-for cache-1 from alert-1",
                "\(alert) facter note-for cache-2 from alert-1",
            ], "\(lines)")
        #expect(Set(lines.dropFirst(4)) == ["\(cache1) facter after", "\(cache2) facter after"], "\(lines)")
    }

    @Test("--set fills a playbook argument; confirmation asks for changing playbooks only")
    func settingsAndConfirmation() async throws {
        let fleet = try sharedCatalogueFleet.get()
        try fleet.reset()
        let set = try await fleet.fab(["--set", "reason=set on the command line", "-H", "backend-1", "puppet.disable"])
        #expect(set.status == 0, "\(set)")
        #expect(
            try fleet.calls()["backend-1"]?.first?.arguments.last == "set on the command line (by \(fleet.fleet.user))")

        try fleet.reset()
        let changing = try await fleet.fab(
            ["-H", "backend-1", "puppet.disable:x"], inventory: "confirming.yml", yes: false)
        #expect(changing.status != 0, "\(changing)")
        #expect(try fleet.calls().isEmpty, "a refused confirmation ran host commands")
        let readOnly = try await fleet.fab(["-H", "backend-1", "cache.stats"], inventory: "confirming.yml", yes: false)
        #expect(readOnly.status == 0, "\(readOnly)")
        // A read-only playbook that calls a changing task is refused at load (see PlaybookFormatTests).
        let pinned = try await fleet.fab(["-H", "backend-1", "vm.reboot"], inventory: "confirming.yml", yes: false)
        #expect(pinned.status != 0, "vm.reboot must ask: \(pinned)")
    }
}
