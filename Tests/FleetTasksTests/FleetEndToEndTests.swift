import Fleet
import Foundation
import SSHTransport
import Synchronization
import TestFleet
import Testing

@testable import FleetTasks

/// A real test fleet set up as GoReplay hosts, with the inventory a test
/// would have: supervisor services, `goreplay: [goreplay, gor]`, root login.
struct GoReplayFleet {
    let fleet: TestFleet
    let inventory: Inventory
    let marker = DataSyncSettings.defaultMarker

    init(hostCount: Int = 5) throws {
        fleet = try TestFleet.start(TestFleetOptions(hostCount: hostCount, namePrefix: "gor"))
        inventory = Inventory(
            name: "testfleet",
            ssh: SSHSettings(
                user: fleet.user, port: 2222, identityFiles: [fleet.clientKeyPath],
                knownHosts: [fleet.knownHostsPath], connectTimeout: .seconds(30), commandTimeout: .seconds(60)),
            parallelism: 10,
            services: ServiceSettings(manager: .supervisor, aliases: ["goreplay": ["goreplay", "gor"]]),
            hosts: fleet.hosts.map {
                FleetHost(name: $0.name, address: $0.address, port: $0.port, puppetClasses: ["gor"])
            })
    }

    func host(_ name: String) throws -> TestFleetHost {
        try #require(fleet.host(named: name))
    }

    /// Installs a service `service` whose run script execs a binary named
    /// `goreplay` (a link to sleep), so check_procs and pgrep see `goreplay`.
    func installService(on name: String, service: String = "goreplay") throws {
        let host = try host(name)
        let binary = host.realPath("/opt/goreplay/bin")
        try FileManager.default.createDirectory(atPath: binary, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: binary + "/goreplay")
        try FileManager.default.createSymbolicLink(atPath: binary + "/goreplay", withDestinationPath: "/bin/sleep")
        let directory = host.realPath("\(SupervisorLayout.servicesDirectory)/\(service)")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "#!/bin/sh\nexec /opt/goreplay/bin/goreplay infinity\n".write(
            toFile: directory + "/run", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory + "/run")
        try FileManager.default.createDirectory(
            atPath: host.realPath("/etc/govuk/env.d"), withIntermediateDirectories: true)
    }

    /// Sets the marker's content (nil removes it) and mode.
    func setMarker(on name: String, _ content: String?, mode: Int = 0o644) throws {
        let path = try host(name).realPath(marker)
        try? FileManager.default.removeItem(atPath: path)
        if let content {
            try content.write(toFile: path, atomically: false, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        }
    }

    func markerContent(on name: String) throws -> String? {
        let path = try host(name).realPath(marker)
        return FileManager.default.fileExists(atPath: path) ? try String(contentsOfFile: path, encoding: .utf8) : nil
    }

    func markerMode(on name: String) throws -> Int? {
        let attributes = try FileManager.default.attributesOfItem(atPath: try host(name).realPath(marker))
        return (attributes[.posixPermissions] as? NSNumber)?.intValue
    }

    /// Starts the service inside the host with the same supervisor command the tasks use.
    func startService(on name: String, service: String = "goreplay") throws {
        let command = ServiceControl(manager: .supervisor).command(.start, try ServiceName(validating: service))
        let result = try ssh(name, command)
        #expect(result.status == 0, "\(name): \(result.output)")
    }

    /// Runs `command` on the host through the real OpenSSH client, so a daemon
    /// it starts inherits only what sshd gives it. (Inside `fleet.run` a daemon
    /// would inherit the socket Foundation's Process watches for the child's
    /// exit, and the call would never return.)
    @discardableResult
    func ssh(_ name: String, _ command: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ssh")
        // As root: this is the test arranging a host (starting daemons, writing their logs),
        // not the operator's login the tasks use.
        process.arguments = fleet.sshArguments(for: try host(name), user: fleet.rootUser) + [command]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func goreplayRunning(on name: String) throws -> Bool {
        try fleet.run(on: name, "pgrep -x goreplay >/dev/null").status == 0
    }

    /// The real plugin's line and status inside the host.
    func realCheckProcs(on name: String) throws -> (Int32, String) {
        let result = try fleet.run(on: name, "/usr/lib/nagios/plugins/check_procs -c 1: -C goreplay")
        return (result.status, result.output.trimmingCharacters(in: .newlines))
    }

    /// Runs tasks through the real runner, as the CLI does (preflight first).
    func run(
        _ tasks: [any FleetTask], on names: [String]? = nil, time: TimeSource = WindowTests.noon,
        dryRun: Bool = false, force: Bool = false
    ) async throws -> (RunReport, [String: String]) {
        let context = RunContext(inventory: inventory, time: time, dryRun: dryRun, force: force)
        for task in tasks { try task.preflight(context) }
        let hosts = inventory.hosts.filter { names?.contains($0.name) ?? true }
        let runner = FleetRunner(
            context: context, options: RunnerOptions(parallelism: 10, client: .from(inventory)),
            emit: { _ in })
        let report = await runner.run(tasks.map { PlannedTask(task: $0, hosts: hosts) })
        var messages: [String: String] = [:]
        for record in report.outcomes { messages[record.host] = record.outcome.message ?? "" }
        return (report, messages)
    }
}

func outcome(_ report: RunReport, _ host: String, task: String? = nil) -> TaskOutcome? {
    report.outcomes.last { $0.host == host && (task == nil || $0.task == task) }?.outcome
}

// Serialized: Foundation.Process on Linux can miss a child's exit when several are
// waited for at once from different threads (seen here as a hang), and the
// fleet helpers spawn processes.
@Suite(
    "GoReplay tasks on the real test fleet", .serialized,
    .enabled(if: TestFleet.isSupported, "needs root, sshd, unshare"))
struct FleetEndToEndTests {
    @Test("recover-goreplay: mixed hosts end healthy; unreachable reported; exit 1; second run changes nothing")
    func recover() async throws {
        let setup = try GoReplayFleet()
        defer { setup.fleet.stop() }
        // gor-1: marker 'true' (mode 0640 kept), service stopped.
        try setup.installService(on: "gor-1")
        try setup.setMarker(on: "gor-1", "true\n", mode: 0o640)
        // gor-2: healthy: marker empty, service running.
        try setup.installService(on: "gor-2")
        try setup.setMarker(on: "gor-2", "")
        try setup.startService(on: "gor-2")
        // gor-3: marker missing, service stopped.
        try setup.installService(on: "gor-3")
        try setup.setMarker(on: "gor-3", nil)
        // gor-4: the legacy job name `gor`, marker 'true'.
        try setup.installService(on: "gor-4", service: "gor")
        try setup.setMarker(on: "gor-4", "true\n")
        // gor-5: unreachable.
        try setup.fleet.stopHost("gor-5")

        // --dry-run reads state and prints the plan, changing nothing.
        let (dry, plans) = try await setup.run([RecoverGoReplayTask()], dryRun: true)
        #expect(plans["gor-1"]?.contains("would clear marker ('true'); would start goreplay") == true, "\(plans)")
        #expect(plans["gor-2"]?.hasPrefix("healthy, nothing to do") == true, "\(plans)")
        #expect(plans["gor-3"]?.contains("would create the marker empty; would start goreplay") == true, "\(plans)")
        #expect(plans["gor-4"]?.contains("would start gor") == true, "\(plans)")
        #expect(dry.outcomes.allSatisfy { !$0.outcome.changed })
        #expect(try setup.markerContent(on: "gor-1") == "true\n")
        #expect(try !setup.goreplayRunning(on: "gor-1"))

        let (report, messages) = try await setup.run([RecoverGoReplayTask()])
        #expect(report.exitStatus == 1)
        #expect(messages["gor-1"] == "marker was 'true', cleared; service goreplay started; 1 process", "\(messages)")
        #expect(messages["gor-2"] == "healthy, nothing to do (service goreplay running, 1 process)", "\(messages)")
        #expect(
            messages["gor-3"] == "marker was missing, created empty; service goreplay started; 1 process", "\(messages)"
        )
        #expect(messages["gor-4"] == "marker was 'true', cleared; service gor started; 1 process", "\(messages)")
        guard case .connectionFailed = outcome(report, "gor-5")?.hostOutcome else {
            Issue.record("gor-5: \(String(describing: outcome(report, "gor-5")))")
            return
        }
        #expect(outcome(report, "gor-1")?.changed == true)
        #expect(outcome(report, "gor-2")?.changed == false)
        for name in ["gor-1", "gor-2", "gor-3", "gor-4"] {
            #expect(try setup.markerContent(on: name) == "", "\(name)")
            #expect(try setup.goreplayRunning(on: name), "\(name)")
        }
        #expect(try setup.markerMode(on: "gor-1") == 0o640) // kept
        #expect(try setup.markerMode(on: "gor-3") == 0o644) // new marker

        let (again, secondMessages) = try await setup.run(
            [RecoverGoReplayTask()], on: ["gor-1", "gor-2", "gor-3", "gor-4"])
        #expect(again.exitStatus == 0)
        for name in ["gor-1", "gor-2", "gor-3", "gor-4"] {
            #expect(secondMessages[name]?.hasPrefix("healthy, nothing to do") == true, "\(name): \(secondMessages)")
            #expect(outcome(again, name)?.changed == false)
        }
        #expect(secondMessages["gor-4"] == "healthy, nothing to do (service gor running, 1 process)")
    }

    @Test("recover-goreplay inside the window: refused without --force, runs with it")
    func recoverWindow() async throws {
        let setup = try GoReplayFleet(hostCount: 1)
        defer { setup.fleet.stop() }
        try setup.installService(on: "gor-1")
        try setup.setMarker(on: "gor-1", "true\n")
        await #expect(throws: TaskRefusal.self) {
            _ = try await setup.run([RecoverGoReplayTask()], time: WindowTests.night)
        }
        #expect(try setup.markerContent(on: "gor-1") == "true\n")
        let (forced, messages) = try await setup.run([RecoverGoReplayTask()], time: WindowTests.night, force: true)
        #expect(forced.exitStatus == 0, "\(messages)")
        #expect(try setup.markerContent(on: "gor-1") == "")
        #expect(try setup.goreplayRunning(on: "gor-1"))
    }

    @Test("the runner re-checks the window before each host, so a window that opens mid-run stops the run there")
    func runnerRechecksWindowPerHost() async throws {
        let setup = try GoReplayFleet(hostCount: 1)
        defer { setup.fleet.stop() }
        try setup.installService(on: "gor-1")
        try setup.setMarker(on: "gor-1", "true\n")
        // As if the CLI's check had passed just before 23:00: the runner's own check sees the window.
        let context = RunContext(inventory: setup.inventory, time: WindowTests.night)
        let runner = FleetRunner(
            context: context, options: RunnerOptions(parallelism: 1, client: .from(setup.inventory)),
            emit: { _ in })
        let report = await runner.run([PlannedTask(task: RecoverGoReplayTask(), hosts: setup.inventory.hosts)])
        let result = try #require(outcome(report, "gor-1"))
        #expect(result.hostOutcome.isFailure)
        #expect(result.message?.contains("refused") == true, "\(result)")
        #expect(try setup.markerContent(on: "gor-1") == "true\n")
        #expect(try !setup.goreplayRunning(on: "gor-1"))
    }

    @Test("check-goreplay equals the real check_procs in OK and CRITICAL states; worst status wins")
    func check() async throws {
        let setup = try GoReplayFleet(hostCount: 3)
        defer { setup.fleet.stop() }
        for name in ["gor-1", "gor-2", "gor-3"] {
            try setup.installService(on: name)
            try setup.setMarker(on: name, "")
        }
        try setup.startService(on: "gor-1")
        try setup.startService(on: "gor-2")
        // A second goreplay process on gor-2: "2 processes".
        try setup.ssh("gor-2", "setsid /opt/goreplay/bin/goreplay 300 </dev/null >/dev/null 2>&1 &")

        let (report, lines) = try await setup.run([CheckGoReplayTask()])
        for name in ["gor-1", "gor-2", "gor-3"] {
            let (status, line) = try setup.realCheckProcs(on: name)
            #expect(lines[name] == line, "\(name)")
            #expect(outcome(report, name)?.checkStatus?.rawValue == status, "\(name)")
        }
        #expect(lines["gor-2"]?.hasPrefix("PROCS OK: 2 processes") == true)
        #expect(lines["gor-3"]?.hasPrefix("PROCS CRITICAL: 0 processes") == true)
        #expect(report.exitStatus == 2)

        // All OK → 0; an unreachable host → UNKNOWN (3).
        let (ok, _) = try await setup.run([CheckGoReplayTask()], on: ["gor-1", "gor-2"])
        #expect(ok.exitStatus == 0)
        try setup.fleet.stopHost("gor-3")
        let (unknown, _) = try await setup.run([CheckGoReplayTask()])
        #expect(unknown.exitStatus == 3)

        // Inside the window: OK for every host, unreachable included, without connecting.
        let (night, nightLines) = try await setup.run([CheckGoReplayTask()], time: WindowTests.night)
        #expect(night.exitStatus == 0)
        #expect(nightLines["gor-3"]?.hasPrefix("PROCS OK: data sync in progress") == true)
    }

    @Test("data-sync.start then data-sync.finish reproduce the nightly jobs, legacy name included")
    func dataSync() async throws {
        let setup = try GoReplayFleet(hostCount: 2)
        defer { setup.fleet.stop() }
        try setup.installService(on: "gor-1")
        try setup.installService(on: "gor-2", service: "gor")
        try setup.setMarker(on: "gor-1", "", mode: 0o600)
        try setup.setMarker(on: "gor-2", "")
        try setup.startService(on: "gor-1")
        try setup.startService(on: "gor-2", service: "gor")

        let (started, startMessages) = try await setup.run([DataSyncTask(phase: .start)])
        #expect(started.exitStatus == 0, "\(startMessages)")
        #expect(startMessages["gor-2"] == "marker set to 'true'; gor stopped; 0 processes", "\(startMessages)")
        for name in ["gor-1", "gor-2"] {
            #expect(try setup.markerContent(on: name) == "true\n")
            #expect(try !setup.goreplayRunning(on: name))
            #expect(try setup.realCheckProcs(on: name).0 == 2)
        }
        #expect(try setup.markerMode(on: "gor-1") == 0o600)

        let (finished, finishMessages) = try await setup.run([DataSyncTask(phase: .finish)])
        #expect(finished.exitStatus == 0, "\(finishMessages)")
        for name in ["gor-1", "gor-2"] {
            #expect(try setup.markerContent(on: name) == "")
            #expect(try setup.goreplayRunning(on: name))
        }
    }

    @Test("the runbook line: sdo:'rm MARKER' app.start:goreplay — a host without the marker fails alone")
    func runbook() async throws {
        let setup = try GoReplayFleet(hostCount: 3)
        defer { setup.fleet.stop() }
        let registry = try TaskRegistry.standard(playbookDirectories: [playbookDirectory])
        try setup.installService(on: "gor-1")
        try setup.setMarker(on: "gor-1", "true\n")
        try setup.installService(on: "gor-2")
        try setup.setMarker(on: "gor-2", nil)
        try setup.installService(on: "gor-3", service: "gor")
        try setup.setMarker(on: "gor-3", "true\n")

        let remove = try registry.makeTask(try word("sdo:rm \(setup.marker)"), inventory: setup.inventory)
        let start = try registry.makeTask(try word("app.start:goreplay"), inventory: setup.inventory)
        let (report, _) = try await setup.run([remove, start])
        #expect(report.exitStatus == 1)
        #expect(outcome(report, "gor-2", task: remove.invocation.raw)?.hostOutcome == .exited(status: 1))
        #expect(
            report.summary.results.contains {
                $0.host == "gor-2" && $0.task == "app.start:goreplay"
                    && $0.outcome == .skipped(reason: "failed in an earlier task")
            })
        #expect(try setup.goreplayRunning(on: "gor-1"))
        #expect(try setup.goreplayRunning(on: "gor-3")) // the legacy `gor` job, which Fabric missed
        #expect(try !setup.goreplayRunning(on: "gor-2"))
        #expect(try setup.markerContent(on: "gor-1") == nil)

        // Starting a running service succeeds; status is read-only and reports it.
        let status = try registry.makeTask(try word("app.status:goreplay"), inventory: setup.inventory)
        let (second, messages) = try await setup.run([start, status], on: ["gor-1", "gor-3"])
        #expect(second.exitStatus == 0)
        #expect(messages["gor-3"] == "running")
        // An unknown service fails with LSB status 5.
        let missing = try registry.makeTask(try word("app.start:nginx"), inventory: setup.inventory)
        let (none, _) = try await setup.run([missing], on: ["gor-1"])
        #expect(outcome(none, "gor-1")?.hostOutcome == .exited(status: 5))
    }

    @Test("playbooks run by name: goreplay.status reads, goreplay.restart restarts")
    func playbooks() async throws {
        let setup = try GoReplayFleet(hostCount: 2)
        defer { setup.fleet.stop() }
        let registry = try TaskRegistry.standard(playbookDirectories: [playbookDirectory])
        try setup.installService(on: "gor-1", service: "gor")
        try setup.setMarker(on: "gor-1", "true\n")
        try setup.installService(on: "gor-2")
        try setup.setMarker(on: "gor-2", nil)
        try setup.startService(on: "gor-2")

        let status = try registry.makeTask(try word("goreplay.status"), inventory: setup.inventory)
        let (report, messages) = try await setup.run([status])
        #expect(report.exitStatus == 0, "\(messages)")
        #expect(messages["gor-1"] == "marker 'true'; service gor stopped, goreplay processes: 0", "\(messages)")
        #expect(messages["gor-2"] == "marker missing; service goreplay running, goreplay processes: 1", "\(messages)")

        let restart = try registry.makeTask(try word("goreplay.restart"), inventory: setup.inventory)
        let before = try setup.fleet.run(on: "gor-2", "pgrep -x goreplay").output
        let (restarted, restartMessages) = try await setup.run([restart])
        #expect(restarted.exitStatus == 0, "\(restartMessages)")
        #expect(restartMessages["gor-1"] == "service gor restarted; goreplay processes: 1", "\(restartMessages)")
        #expect(try setup.fleet.run(on: "gor-2", "pgrep -x goreplay").output != before)
        await #expect(throws: TaskRefusal.self) { _ = try await setup.run([restart], time: WindowTests.night) }
    }
}
