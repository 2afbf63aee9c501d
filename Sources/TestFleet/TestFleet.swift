import Foundation
import Synchronization

/// A fleet of real OpenSSH sshd hosts on loopback, each with its own address, host
/// keys, hostname, PID namespace and private view of a few paths, so per-host state
/// (files, running daemons) really differs between hosts.
///
/// A thin typed wrapper over `scripts/testfleet.sh`, which does the work (and which
/// the demo uses directly). Needs root; gate tests with `.enabled(if: TestFleet.isSupported)`.
///
///     let fleet = try TestFleet.start(TestFleetOptions(hostCount: 3))
///     defer { fleet.stop() }
///     try fleet.run(on: "host-1", "pgrep -x goreplay")
public final class TestFleet: Sendable {
    /// The hosts, in order `<prefix>-1` ... `<prefix>-N`.
    public let hosts: [TestFleetHost]
    /// The default login on every host: as in production, not root, with passwordless (NOPASSWD)
    /// sudo. It exists only inside the hosts (their own /etc/passwd and sudoers).
    public let user: String
    /// The same key also logs in as root, for tests that need it.
    public let rootUser = "root"
    /// Private key (ed25519, no passphrase) that every host accepts.
    public let clientKeyPath: String
    /// known_hosts with each host's ed25519 and ECDSA keys as `[address]:port type key`.
    public let knownHostsPath: String
    /// An ssh_config with a `Host <name>` block per host, for `ssh -F path host-1`.
    public let sshConfigPath: String
    /// The fleet's work directory (layout in docs/test-fleet.md).
    public let workDirectory: String
    /// The claimed loopback /24, e.g. `127.140.7`; hosts are `.1` ... `.N`.
    public let subnet: String

    private let scriptPath: String
    private let purgeOnStop: Bool
    private let stopped = Mutex(false)

    /// True when this machine can run a fleet: root, sshd, unshare, nsenter and the script.
    public static var isSupported: Bool {
        getuid() == 0 && missingTool() == nil && (try? locateScript()) != nil
    }

    /// Starts every host and returns once each sshd listens. Throws (leaving
    /// nothing running) when any host fails to start.
    public static func start(_ options: TestFleetOptions) throws(TestFleetError) -> TestFleet {
        guard getuid() == 0 else { throw .notRoot }
        if let tool = missingTool() { throw .missingTool(tool) }
        try validate(options)
        let script = try locateScript()
        let environment = ProcessInfo.processInfo.environment

        let directory: String
        let generated: Bool
        if let given = options.workDirectory {
            directory = given
            generated = false
        } else {
            directory = try makeWorkDirectory(environment: environment)
            generated = true
        }
        var scriptEnvironment = environment
        scriptEnvironment["TESTFLEET_PATHS"] = options.privatePaths.joined(separator: ":")
        scriptEnvironment["TESTFLEET_START_TIMEOUT"] = String(options.startTimeout)

        let arguments = [
            "up", directory, String(options.hostCount), options.namePrefix,
            // The script tears the fleet down itself if this process dies without stop().
            "--owner", String(getpid()),
        ]
        let result = try runSubprocess(script, arguments, environment: scriptEnvironment)
        guard result.status == 0 else {
            if generated { try? FileManager.default.removeItem(atPath: directory) }
            throw .commandFailed(
                command: "testfleet.sh up \(directory) \(options.hostCount)",
                status: result.status, output: result.output)
        }
        let keep = options.keepWorkDirectory || environment["GOVUK_FAB_TESTFLEET_KEEP"] == "1"
        do {
            return try TestFleet(
                directory: directory, scriptPath: script, purgeOnStop: generated && !keep)
        } catch {
            _ = try? runSubprocess(script, ["down", directory])
            throw error
        }
    }

    private init(directory: String, scriptPath: String, purgeOnStop: Bool) throws(TestFleetError) {
        self.workDirectory = directory
        self.scriptPath = scriptPath
        self.purgeOnStop = purgeOnStop
        self.user =
            try Self.readLines(directory + "/fleet.env")
            .first { $0.hasPrefix("TESTFLEET_USER=") }
            .map { String($0.dropFirst("TESTFLEET_USER=".count)) } ?? "root"
        self.clientKeyPath = directory + "/client/id_ed25519"
        self.knownHostsPath = directory + "/known_hosts"
        self.sshConfigPath = directory + "/ssh_config"
        self.subnet = "127." + (try Self.readLines(directory + "/subnet").first ?? "")
        let privatePaths = try Self.readLines(directory + "/paths")
        self.hosts = try Self.readLines(directory + "/hosts.tsv").enumerated().map {
            index, line throws(TestFleetError) in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 4, let port = Int(fields[2]) else {
                throw .malformedFleetFile(
                    path: directory + "/hosts.tsv",
                    detail: "line \(index + 1): expected name, address, port, root; got '\(line)'")
            }
            return TestFleetHost(
                name: fields[0], address: fields[1], port: port, stateRoot: fields[3],
                directory: directory + "/hosts/" + fields[0], privatePaths: privatePaths)
        }
    }

    deinit { stop() }

    /// The host called `name`, if the fleet has one.
    public func host(named name: String) -> TestFleetHost? {
        hosts.first { $0.name == name }
    }

    /// Stops one host's sshd and every process in its namespace; it then refuses
    /// connections (simulates an unreachable host).
    public func stopHost(_ name: String) throws(TestFleetError) {
        try runScript(["stop-host", workDirectory, try requireHost(name).name])
    }

    /// Moves a host into the fleet's own network namespace (created on first use), where it keeps
    /// its address but is reachable only from the other isolated hosts. With `bridge`, its address
    /// outside forwards into the namespace, so it can serve as the gateway to the others. Needs `ip`
    /// (and `socat` for a bridge); see ``supportsIsolation``.
    public func isolate(_ name: String, bridge: Bool = false) throws(TestFleetError) {
        try runScript(["isolate", workDirectory, try requireHost(name).name] + (bridge ? ["--bridge"] : []))
    }

    /// Drops every packet to an isolated host's sshd inside the fleet's network namespace (iptables),
    /// leaving its TCP connections half-open: a network cut. ``restorePackets(to:)`` undoes it.
    public func dropPackets(to name: String) throws(TestFleetError) {
        try runScript(["drop", workDirectory, try requireHost(name).name])
    }

    /// Stops dropping packets to `name`.
    public func restorePackets(to name: String) throws(TestFleetError) {
        try runScript(["undrop", workDirectory, try requireHost(name).name])
    }

    /// SIGSTOPs a bridged host's forwarder (every socat of its bridge): its TCP connections stay up and
    /// no byte flows, as with a stalled gateway. ``resumeBridge(_:)`` undoes it.
    public func stallBridge(_ name: String) throws(TestFleetError) {
        try runScript(["stall", workDirectory, try requireHost(name).name])
    }

    /// SIGCONTs a stalled bridge.
    public func resumeBridge(_ name: String) throws(TestFleetError) {
        try runScript(["resume", workDirectory, try requireHost(name).name])
    }

    /// Whether ``dropPackets(to:)`` can work here: isolation and `iptables`.
    public static var supportsPacketDrop: Bool {
        supportsIsolation && FileManager.default.isExecutableFile(atPath: "/usr/sbin/iptables")
    }

    /// Whether ``isolate(_:bridge:)`` can work here: root, `ip netns` and `socat`.
    public static var supportsIsolation: Bool {
        isSupported
            && ["/usr/bin/socat", "/usr/sbin/ip"].allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Starts a stopped host again (same address, keys and private files).
    public func startHost(_ name: String) throws(TestFleetError) {
        try runScript(["start-host", workDirectory, try requireHost(name).name])
    }

    /// Runs `shellCommand` with /bin/sh inside the host's mount, PID and UTS
    /// namespaces (not over SSH): for setting up and asserting per-host state.
    /// `output` is stdout and stderr together. Throws `hostNotRunning` for a stopped host. Background processes must redirect
    /// their output, or this waits for them like a shell pipeline would.
    @discardableResult
    public func run(on host: String, _ shellCommand: String) throws(TestFleetError) -> (
        status: Int32, output: String
    ) {
        let name = try requireHost(host).name
        let result = try runSubprocess(
            scriptPath, ["exec", workDirectory, name, "/bin/sh", "-c", shellCommand])
        // 125 plus this exact message is the script's "host not running", not the command's status.
        if result.status == 125, result.output == "testfleet: host \(name) is not running\n" {
            throw .hostNotRunning(name)
        }
        return (result.status, result.output)
    }

    /// Arguments for the real `ssh` client to reach `host` with the fleet's key and
    /// strict host key checking, e.g. `["ssh"] + sshArguments(for: h) + ["uptime"]`.
    /// `user` defaults to ``user``; pass ``rootUser`` to log in as root.
    public func sshArguments(for host: TestFleetHost, user: String? = nil) -> [String] {
        let user = user ?? self.user
        return [
            "-i", clientKeyPath, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "UserKnownHostsFile=\(knownHostsPath)", "-o", "StrictHostKeyChecking=yes",
            "-o", "ConnectTimeout=10", "-p", String(host.port), "\(user)@\(host.address)",
        ]
    }

    /// Stops every host and releases the subnet. Idempotent; also run by deinit,
    /// so a failing test never leaves sshd running.
    public func stop() {
        let first = stopped.withLock { wasStopped in
            defer { wasStopped = true }
            return !wasStopped
        }
        guard first else { return }
        var arguments = ["down", workDirectory]
        if purgeOnStop { arguments.append("--purge") }
        _ = try? runSubprocess(scriptPath, arguments)
    }

    // MARK: - Helpers

    private func requireHost(_ name: String) throws(TestFleetError) -> TestFleetHost {
        guard let host = host(named: name) else { throw .unknownHost(name) }
        return host
    }

    private func runScript(_ arguments: [String]) throws(TestFleetError) {
        let result = try runSubprocess(scriptPath, arguments)
        guard result.status == 0 else {
            throw .commandFailed(
                command: "testfleet.sh " + arguments.joined(separator: " "),
                status: result.status, output: result.output)
        }
    }

    private static func readLines(_ path: String) throws(TestFleetError) -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw .malformedFleetFile(path: path, detail: "missing or unreadable")
        }
        return text.split(separator: "\n").map(String.init)
    }

    private static func missingTool() -> String? {
        ["/usr/sbin/sshd", "/usr/bin/ssh-keygen", "/usr/bin/unshare", "/usr/bin/nsenter"]
            .first { !FileManager.default.isExecutableFile(atPath: $0) }
    }

    private static func validate(_ options: TestFleetOptions) throws(TestFleetError) {
        guard (1...250).contains(options.hostCount) else {
            throw .invalidOptions("hostCount must be 1...250, got \(options.hostCount)")
        }
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "._-"))
        guard let first = options.namePrefix.unicodeScalars.first,
            CharacterSet.alphanumerics.contains(first), first.isASCII,
            options.namePrefix.unicodeScalars.allSatisfy({ $0.isASCII && allowed.contains($0) })
        else {
            throw .invalidOptions(
                "namePrefix '\(options.namePrefix)' must be ASCII letters, digits, '.', '_' or '-'")
        }
        for path in options.privatePaths where !path.hasPrefix("/") || path.contains(":") {
            throw .invalidOptions("private path '\(path)' must be absolute and contain no ':'")
        }
    }

    /// The script: `GOVUK_FAB_TESTFLEET_SCRIPT`, else `scripts/testfleet.sh` of the
    /// package this file was built from, else of the current directory.
    static func locateScript(sourceFile: String = #filePath) throws(TestFleetError) -> String {
        var candidates: [String] = []
        if let override = ProcessInfo.processInfo.environment["GOVUK_FAB_TESTFLEET_SCRIPT"] {
            candidates.append(override)
        }
        let packageRoot = URL(fileURLWithPath: sourceFile)
            .deletingLastPathComponent() // Sources/TestFleet
            .deletingLastPathComponent() // Sources
            .deletingLastPathComponent()
        candidates.append(packageRoot.appendingPathComponent("scripts/testfleet.sh").path)
        candidates.append(FileManager.default.currentDirectoryPath + "/scripts/testfleet.sh")
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) })
        else { throw .scriptNotFound(searched: candidates) }
        return found
    }

    private static func makeWorkDirectory(environment: [String: String]) throws(TestFleetError) -> String {
        var isDirectory: ObjCBool = false
        let base: String
        if let configured = environment["GOVUK_FAB_TESTFLEET_BASE"] {
            base = configured
        } else if FileManager.default.fileExists(atPath: "/dev/shm", isDirectory: &isDirectory),
            isDirectory.boolValue
        {
            base = "/dev/shm/govuk-testfleet"
        } else {
            base = "/var/tmp/govuk-testfleet"
        }
        do {
            try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        } catch {
            throw .invalidOptions("cannot create \(base): \(error)")
        }
        var template = Array((base + "/fleet-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw .invalidOptions("cannot create a directory under \(base): errno \(errno)")
        }
        return String(cString: made)
    }
}
