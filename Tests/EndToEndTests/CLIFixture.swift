import Foundation
import Synchronization
import TestFleet
import Testing

/// The real `govuk-fab` binary, run as a subprocess the way an operator or a
/// runbook script runs it.
enum GovukFabBinary {
    /// Next to the test bundle in the build directory, or `$GOVUK_FAB_BIN`.
    static var path: String {
        if let explicit = ProcessInfo.processInfo.environment["GOVUK_FAB_BIN"] { return explicit }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = bundle.deletingLastPathComponent()
        // The xctest bundle may be a directory on some layouts.
        for _ in 0..<3 {
            let candidate = directory.appendingPathComponent("govuk-fab").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory.deleteLastPathComponent()
        }
        return bundle.deletingLastPathComponent().appendingPathComponent("govuk-fab").path
    }

    static var exists: Bool { FileManager.default.isExecutableFile(atPath: path) }

    /// The repository root (for inventories/ and playbooks/).
    static var repositoryRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }
}

/// Runs processes with stdin from /dev/null (no TTY, as in CI and scripts).
enum CLI {
    /// Runs the binary on a thread of its own, so waiting for it never
    /// blocks Swift's cooperative pool (two threads on a 2-core machine),
    /// which the SSH tests running alongside need.
    static func run(
        _ arguments: [String], environment extra: [String: String] = [:], directory: String? = nil,
        interruptAfter: Duration? = nil
    ) async throws -> CommandRunResult {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(
                    with: Result {
                        try runBlocking(
                            arguments, environment: extra, directory: directory, interruptAfter: interruptAfter)
                    })
            }
            thread.start()
        }
    }

    /// How many runs the audit file says have started.
    static func startedLines(_ path: String) -> Int {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n")
            .filter { $0.contains("\"event\":\"started\"") }.count
    }

    static func runBlocking(
        _ arguments: [String], environment extra: [String: String], directory: String?,
        interruptAfter: Duration?
    ) throws -> CommandRunResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: GovukFabBinary.path)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["SSH_AUTH_SOCK"] = ""
        environment["NO_COLOR"] = "1"
        for (key, value) in extra { environment[key] = value }
        process.environment = environment
        process.currentDirectoryURL = URL(fileURLWithPath: directory ?? GovukFabBinary.repositoryRoot)
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        // Ctrl-C is meant for a run that has started: wait (bounded) for this run's audit
        // `started` line when the audit file is known, so a loaded machine that is slow to get
        // the binary going does not receive the signal before its handler exists.
        let auditPath = extra["XDG_STATE_HOME"].map { $0 + "/govuk-fab/audit.jsonl" }
        let startedBefore = auditPath.map(Self.startedLines) ?? 0
        try process.run()
        if let interruptAfter {
            if let auditPath {
                let deadline = Date().addingTimeInterval(60)
                while Self.startedLines(auditPath) <= startedBefore, process.isRunning, Date() < deadline {
                    Thread.sleep(forTimeInterval: 0.05)
                }
            }
            Thread.sleep(
                forTimeInterval: Double(interruptAfter.components.seconds)
                    + Double(interruptAfter.components.attoseconds) / 1e18)
            kill(process.processIdentifier, SIGINT)
        }
        // Read both pipes concurrently so a chatty child never blocks.
        let stdoutData = Mutex(Data())
        let reader = Thread { stdoutData.withLock { $0 = out.fileHandleForReading.readDataToEndOfFile() } }
        reader.start()
        let stderrData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while reader.isExecuting || !reader.isFinished { Thread.sleep(forTimeInterval: 0.01) }
        return CommandRunResult(
            status: process.terminationStatus,
            stdout: String(decoding: stdoutData.withLock { $0 }, as: UTF8.self),
            stderr: String(decoding: stderrData, as: UTF8.self))
    }
}

/// A running test fleet described by an inventory file, as GoReplay hosts
/// with govuk-fab's supervisor services.
final class FleetInventory: @unchecked Sendable {
    let fleet: TestFleet
    let directory: String
    let inventoryPath: String
    let marker = "/etc/govuk/env.d/FACTER_data_sync_in_progress"

    init(hosts: Int, prefix: String = "gor", confirmChanges: Bool = false, extra: String = "") throws {
        fleet = try TestFleet.start(TestFleetOptions(hostCount: hosts, namePrefix: prefix))
        directory = fleet.workDirectory + "/cli"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        inventoryPath = directory + "/testfleet.yml"
        var yaml = """
            name: testfleet
            ssh:
              user: \(fleet.user)
              port: 2222
              identity_files: [\(fleet.clientKeyPath)]
              known_hosts: [\(fleet.knownHostsPath)]
              connect_timeout: 20s
              command_timeout: 60s
            parallelism: 10
            confirm_changes: \(confirmChanges)
            services:
              manager: supervisor
              aliases: {goreplay: [goreplay, gor]}
            \(extra)
            hosts:

            """
        for (index, host) in fleet.hosts.enumerated() {
            let nodeClass = index == 0 ? "cache" : "backend"
            yaml +=
                "  - {name: \(host.name), address: \(host.address), port: \(host.port), node_class: \(nodeClass), puppet_classes: [Gor, govuk::node::s_\(nodeClass)]}\n"
        }
        try yaml.write(toFile: inventoryPath, atomically: true, encoding: .utf8)
    }

    var names: [String] { fleet.hosts.map(\.name) }

    /// govuk-fab --inventory FILE testfleet ARGS…, with its audit log in the fleet's directory.
    func fab(_ arguments: [String], environment: [String: String] = [:], interruptAfter: Duration? = nil) async throws
        -> CommandRunResult
    {
        var env = ["XDG_STATE_HOME": directory + "/state"]
        for (key, value) in environment { env[key] = value }
        return try await CLI.run(
            ["--inventory", inventoryPath, "testfleet"] + arguments, environment: env,
            interruptAfter: interruptAfter)
    }

    var auditLines: [String] {
        let path = directory + "/state/govuk-fab/audit.jsonl"
        return ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// A supervisor service named `service` whose daemon's command name is `goreplay`.
    func installGoReplayService(on name: String, service: String = "goreplay") throws {
        let host = try #require(fleet.host(named: name))
        let bin = host.realPath("/opt/goreplay/bin")
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: bin + "/goreplay")
        try FileManager.default.createSymbolicLink(atPath: bin + "/goreplay", withDestinationPath: "/bin/sleep")
        let dir = host.realPath("/etc/govuk-fab/services/\(service)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "#!/bin/sh\nexec /opt/goreplay/bin/goreplay infinity\n".write(
            toFile: dir + "/run", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir + "/run")
        try FileManager.default.createDirectory(
            atPath: host.realPath("/etc/govuk/env.d"), withIntermediateDirectories: true)
    }

    func setMarker(on name: String, _ content: String?) throws {
        let path = try #require(fleet.host(named: name)).realPath(marker)
        try? FileManager.default.removeItem(atPath: path)
        if let content { try content.write(toFile: path, atomically: false, encoding: .utf8) }
    }

    func markerExists(on name: String) throws -> Bool {
        FileManager.default.fileExists(atPath: try #require(fleet.host(named: name)).realPath(marker))
    }

    func processCount(_ pattern: String, on name: String) throws -> Int {
        let result = try fleet.run(on: name, "pgrep -c -f \(pattern) || true")
        return Int(result.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    func goreplayRunning(on name: String) throws -> Bool {
        try fleet.run(on: name, "pgrep -x goreplay >/dev/null").status == 0
    }

    deinit { fleet.stop() }
}

/// Tests that need the fleet: root, sshd, and the built binary.
let fleetAvailable = TestFleet.isSupported && GovukFabBinary.exists
