import Foundation
import Synchronization
import TestFleet
import Testing

/// A production-shaped test fleet for the fabric-scripts catalogue: hosts named as GOV.UK's
/// (cache-1, backend-1, alert-1, puppetmaster-1, mongo-1 …), stub host commands that record
/// their arguments, and the real `govuk-fab` binary run as an operator runs it.
final class CatalogueFleet: @unchecked Sendable {
    /// Inventory name → node class, in fleet order (cat-1 is cache-1, …).
    static let layout: [(name: String, nodeClass: String)] = [
        ("cache-1", "cache"), ("cache-2", "cache"), ("backend-1", "backend"), ("alert-1", "alert"),
        ("puppetmaster-1", "puppetmaster"), ("mongo-1", "mongo"), ("mongo-2", "mongo"),
    ]
    /// Host commands the catalogue calls, stubbed on every host.
    static let stubbed = [
        "govuk_puppet", "puppet", "hiera", "check_reboot_required", "shutdown", "poweroff", "service", "facter",
        "lsof", "status", "start", "restart", "varnishadm", "varnishstat", "govuk_check_security_upgrades",
        "unattended-upgrade", "apt-get", "locksmithctl", "mongo", "mysql", "rabbitmqctl", "curl", "ntpq", "ntpdate",
        "check_ntp_time", "nginx",
    ]
    /// Places the tasks write on hosts, private to each host.
    static let privatePaths =
        TestFleetOptions.defaultPrivatePaths + [
            "/var/lib/puppet", "/etc/puppet", "/var/lib/icinga", "/etc/nginx", "/var/lib/mongodb", "/etc/init.d",
            "/etc/init",
            "/var/lib/update-notifier", "/run/publisher", TestFleetHostStubs.binDirectory,
        ]

    let fleet: TestFleet
    let stubs: TestFleetHostStubs
    let directory: String
    let inventoryPath: String

    init() throws {
        var options = TestFleetOptions(hostCount: Self.layout.count, namePrefix: "cat")
        options.privatePaths = Self.privatePaths
        fleet = try TestFleet.start(options)
        stubs = try TestFleetHostStubs.install(Self.stubbed, on: fleet)
        directory = fleet.workDirectory + "/catalogue"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        inventoryPath = directory + "/production.yml"
        try Self.inventory(fleet, name: "production", confirm: false).write(
            toFile: inventoryPath, atomically: true, encoding: .utf8)
        try Self.inventory(fleet, name: "staging", confirm: false).write(
            toFile: directory + "/staging.yml", atomically: true, encoding: .utf8)
        try Self.inventory(fleet, name: "production", confirm: true)
            .write(toFile: directory + "/confirming.yml", atomically: true, encoding: .utf8)
    }

    static func inventory(_ fleet: TestFleet, name: String, confirm: Bool) -> String {
        var yaml = """
            name: \(name)
            ssh:
              user: \(fleet.user)
              port: 2222
              identity_files: [\(fleet.clientKeyPath)]
              known_hosts: [\(fleet.knownHostsPath)]
              connect_timeout: 20s
              command_timeout: 60s
            parallelism: 10
            confirm_changes: \(confirm)
            services:
              manager: sysv
            hosts:

            """
        for (host, entry) in zip(fleet.hosts, Self.layout) {
            yaml +=
                "  - {name: \(entry.name), address: \(host.address), port: \(host.port), node_class: \(entry.nodeClass)}\n"
        }
        return yaml
    }

    deinit { fleet.stop() }

    /// The fleet host behind an inventory name (`cache-1` is `cat-1`).
    func fleetName(_ name: String) -> String {
        let index = Self.layout.firstIndex { $0.name == name }!
        return fleet.hosts[index].name
    }

    func realPath(_ host: String, _ path: String) -> String {
        fleet.host(named: fleetName(host))!.realPath(path)
    }

    /// Writes a file on a host (creating its directory).
    func write(_ host: String, _ path: String, _ content: String, mode: Int = 0o644) throws {
        let real = realPath(host, path)
        guard real != path else { throw StubError(message: "\(path) is not private on \(host)") }
        try FileManager.default.createDirectory(
            atPath: (real as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try content.write(toFile: real, atomically: false, encoding: .utf8)
        chmod(real, mode_t(mode))
    }

    func read(_ host: String, _ path: String) -> String? {
        try? String(contentsOfFile: realPath(host, path), encoding: .utf8)
    }

    func behave(_ host: String, _ command: String, exit: Int32 = 0, stdout: String = "") throws {
        try stubs.setBehaviour(on: fleetName(host), command, exit: exit, stdout: stdout)
    }

    func script(_ host: String, _ command: String, _ body: String) throws {
        try stubs.setScript(on: fleetName(host), command, body)
    }

    /// Forgets calls, stub behaviours and the files tasks write, between cases.
    func reset() throws {
        try stubs.reset()
        for (host, _) in Self.layout {
            for path in [
                "/var/lib/puppet", "/etc/puppet", "/var/lib/icinga", "/etc/nginx", "/var/lib/mongodb", "/etc/init.d",
                "/etc/init", "/var/lib/update-notifier", "/etc/govuk",
            ] {
                let real = realPath(host, path)
                for name in (try? FileManager.default.contentsOfDirectory(atPath: real)) ?? [] {
                    try? FileManager.default.removeItem(atPath: real + "/" + name)
                }
            }
        }
        // The alert host's Icinga command file (a FIFO on a real one) is a plain file here.
        try write("alert-1", "/var/lib/icinga/rw/nagios.cmd", "", mode: 0o666)
    }

    /// Stub calls per inventory host, oldest first: `user: command "arg" …`.
    func calls() throws -> [String: [TestFleetHostStubs.Call]] {
        var result: [String: [TestFleetHostStubs.Call]] = [:]
        for (host, _) in Self.layout {
            let calls = try stubs.calls(on: fleetName(host))
            if !calls.isEmpty { result[host] = calls }
        }
        return result
    }

    /// `govuk-fab --inventory FILE [--yes] ENVIRONMENT ARGS…`, as an operator runs it (stdin not a terminal).
    func fab(
        _ arguments: [String], environment name: String = "production", inventory: String? = nil,
        yes: Bool = true
    ) async throws -> FabRun {
        let environment = [
            "XDG_STATE_HOME": directory + "/state", "GOVUK_FAB_PLAYBOOK_DIR": Self.repositoryRoot + "/playbooks",
        ]
        let file = directory + "/" + (inventory ?? "\(name).yml")
        return try await FabRun.run(
            ["--inventory", file] + (yes ? ["--yes"] : []) + [name] + arguments,
            environment: environment, directory: Self.repositoryRoot)
    }

    static var repositoryRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    var auditLines: [String] {
        let path = directory + "/state/govuk-fab/audit.jsonl"
        return ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }
}

/// One finished `govuk-fab` process.
struct FabRun: CustomStringConvertible, Sendable {
    var status: Int32
    var stdout: String
    var stderr: String

    var description: String { "exit \(status)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }

    static var binary: String {
        if let explicit = ProcessInfo.processInfo.environment["GOVUK_FAB_BIN"] { return explicit }
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("govuk-fab").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        return CatalogueFleet.repositoryRoot + "/.build/debug/govuk-fab"
    }

    /// Runs the binary on a thread of its own, so waiting never blocks Swift's cooperative pool.
    static func run(_ arguments: [String], environment extra: [String: String], directory: String) async throws
        -> FabRun
    {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(
                    with: Result {
                        let process = Process()
                        process.executableURL = URL(fileURLWithPath: binary)
                        process.arguments = arguments
                        process.currentDirectoryURL = URL(fileURLWithPath: directory)
                        var environment = ProcessInfo.processInfo.environment
                        environment["NO_COLOR"] = "1"
                        for (key, value) in extra { environment[key] = value }
                        process.environment = environment
                        process.standardInput = FileHandle.nullDevice
                        let out = Pipe()
                        let err = Pipe()
                        process.standardOutput = out
                        process.standardError = err
                        try process.run()
                        let outData = Mutex(Data())
                        let reader = Thread {
                            let data = out.fileHandleForReading.readDataToEndOfFile()
                            outData.withLock { $0 = data }
                        }
                        reader.start()
                        let errData = err.fileHandleForReading.readDataToEndOfFile()
                        process.waitUntilExit()
                        while !reader.isFinished { usleep(1000) }
                        return FabRun(
                            status: process.terminationStatus,
                            stdout: String(decoding: outData.withLock { $0 }, as: UTF8.self),
                            stderr: String(decoding: errData, as: UTF8.self))
                    })
            }.start()
        }
    }
}

/// A stub call a case expects: on which host, through sudo or as the SSH user, with which argv.
/// An argument written `~TEXT` matches any argument containing TEXT; `{user}` is the SSH user.
struct ExpectedCall: Sendable, CustomStringConvertible {
    var host: String
    var sudo: Bool
    var argv: [String]

    var description: String {
        "\(host) \(sudo ? "sudo" : "run") " + argv.map { $0.debugDescription }.joined(separator: " ")
    }

    func matches(_ call: TestFleetHostStubs.Call, user: String) -> Bool {
        guard call.user == (sudo ? "root" : user), call.arguments.count + 1 == argv.count else { return false }
        for (actual, wanted) in zip([call.command] + call.arguments, argv) {
            let wanted = wanted.replacingOccurrences(of: "{user}", with: user)
            if wanted.hasPrefix("~") ? !actual.contains(wanted.dropFirst()) : actual != wanted { return false }
        }
        return true
    }
}

func sudoCall(_ host: String, _ argv: String...) -> ExpectedCall { ExpectedCall(host: host, sudo: true, argv: argv) }
func plainCall(_ host: String, _ argv: String...) -> ExpectedCall { ExpectedCall(host: host, sudo: false, argv: argv) }
