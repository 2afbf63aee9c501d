import Foundation
import Logging
import SSHTransport
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Starts `/bin/sh -c command` with stdout and stderr going to `outputPath`; returns its pid.
/// (posix_spawn + waitpid rather than Foundation's Process, whose exit monitoring hangs when tests run
/// in parallel with a long-lived child such as sshd.)
func spawnShell(_ command: String, outputPath: String = "/dev/null") throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    // Children inherit the spawning thread's signal mask, and Dispatch's worker threads block signals
    // such as SIGTERM: reset the mask and dispositions so the child can be stopped.
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var emptySet = sigset_t()
    sigemptyset(&emptySet)
    var defaultSet = sigset_t()
    sigemptyset(&defaultSet)
    for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaultSet, signal) }
    posix_spawnattr_setsigmask(&attributes, &emptySet)
    posix_spawnattr_setsigdefault(&attributes, &defaultSet)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var pid: pid_t = 0
    let arguments = ["/bin/sh", "-c", command]
    var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    let rc = posix_spawn(&pid, "/bin/sh", &actions, &attributes, &argv, environ)
    guard rc == 0 else { throw TestSetupError("posix_spawn failed: \(rc)") }
    return pid
}

/// Waits for a child and returns its exit status (128+N if killed by signal N).
@discardableResult
func waitForChild(_ pid: pid_t) -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let signal = status & 0x7f
    return signal == 0 ? (status >> 8) & 0xff : 128 + signal
}

/// Runs a shell command to completion and returns its exit status and combined output.
@discardableResult
func shell(_ command: String) throws -> (status: Int32, output: String) {
    let outputPath = "/tmp/govuk-fab-shell.\(getpid()).\(UInt64.random(in: 0...UInt64.max))"
    defer { unlink(outputPath) }
    let status = waitForChild(try spawnShell(command, outputPath: outputPath))
    let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    return (status, output)
}

/// A fresh temporary directory.
func makeTemporaryDirectory(_ prefix: String) throws -> String {
    var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw TestSetupError("mkdtemp failed") }
    return String(cString: made)
}

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Log handler that keeps messages so tests can assert on warnings.
final class CapturingLogHandler: LogHandler, @unchecked Sendable {
    let store: LogStore
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug

    init(store: LogStore) { self.store = store }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        store.append(event.level, "\(event.message) \(event.metadata ?? [:])")
    }
}

// swift-log's LogEvent arrived in 1.9; fall back to the classic entry point if it is older.
extension CapturingLogHandler {
    func log(
        level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String,
        file: String, function: String, line: UInt
    ) {
        store.append(level, "\(message)")
    }
}

final class LogStore: Sendable {
    private let entries = Mutex<[(Logger.Level, String)]>([])
    func append(_ level: Logger.Level, _ message: String) { entries.withLock { $0.append((level, message)) } }
    var all: [String] { entries.withLock { $0.map(\.1) } }
    var warnings: [String] { entries.withLock { $0.filter { $0.0 == .warning }.map(\.1) } }
}

func capturingLogger() -> (Logger, LogStore) {
    let store = LogStore()
    return (Logger(label: "test", factory: { _ in CapturingLogHandler(store: store) }), store)
}

/// A quiet logger for tests that do not look at logs.
let quietLogger = Logger(label: "ssh-test", factory: { _ in SwiftLogNoOpLogHandler() })

/// A port nothing listens on right now (bound then released).
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw TestSetupError("cannot bind a loopback port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// An sshd on 127.0.0.1 with exactly the host keys and authorized keys a test asks for — for cases the
/// shared TestFleet does not set up (specific key types, RSA user keys, agent).
final class StandaloneSSHD: @unchecked Sendable {
    let directory: String
    let port: Int
    let pid: pid_t
    private let stopped = Mutex(false)

    /// Host key files (private) by type, e.g. "ed25519" → dir/host_ed25519.
    let hostKeys: [String: String]

    init(hostKeyTypes: [String] = ["ed25519", "ecdsa"], authorizedKeys: [String], extraConfig: [String] = []) throws {
        let directory = try makeTemporaryDirectory("govuk-fab-sshd")
        self.directory = directory
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        var keys: [String: String] = [:]
        for type in hostKeyTypes {
            let path = "\(directory)/host_\(type)"
            try shell("ssh-keygen -q -t \(type) -N '' -f \(path)")
            keys[type] = path
        }
        hostKeys = keys
        try authorizedKeys.joined(separator: "\n").appending("\n")
            .write(toFile: "\(directory)/authorized_keys", atomically: true, encoding: .utf8)
        port = try freeLoopbackPort()
        let config = """
            Port \(port)
            ListenAddress 127.0.0.1
            \(hostKeyTypes.map { "HostKey \(directory)/host_\($0)" }.joined(separator: "\n"))
            AuthorizedKeysFile \(directory)/authorized_keys
            StrictModes no
            UsePAM no
            PermitRootLogin prohibit-password
            PidFile \(directory)/sshd.pid
            Subsystem sftp /usr/lib/openssh/sftp-server
            LogLevel VERBOSE
            \(extraConfig.joined(separator: "\n"))
            """
        try config.write(toFile: "\(directory)/sshd_config", atomically: true, encoding: .utf8)
        pid = try spawnShell(
            "exec /usr/sbin/sshd -D -e -f \(directory)/sshd_config", outputPath: "\(directory)/sshd.log")
        // Wait (bounded) until it accepts connections.
        for _ in 0..<100 {
            if canConnect(port: port) { return }
            usleep(50_000)
        }
        stop()
        throw TestSetupError("sshd did not start on port \(port)")
    }

    func publicKey(_ type: String) throws -> String {
        try String(contentsOfFile: hostKeys[type, default: ""] + ".pub", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A known_hosts line `[127.0.0.1]:port <type> <base64>` for one of this server's host keys.
    func knownHostsLine(_ type: String) throws -> String {
        let fields = try publicKey(type).split(separator: " ")
        return "[127.0.0.1]:\(port) \(fields[0]) \(fields[1])"
    }

    var log: String { (try? String(contentsOfFile: "\(directory)/sshd.log", encoding: .utf8)) ?? "" }

    func stop() {
        let alreadyStopped = stopped.withLock { s in
            defer { s = true }
            return s
        }
        if !alreadyStopped {
            kill(pid, SIGTERM)
            waitForChild(pid)
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A fresh ed25519 (or other) key pair without passphrase; returns the private key path.
func makeUserKey(in directory: String, type: String = "ed25519", name: String = "id", passphrase: String = "") throws
    -> String
{
    let path = "\(directory)/\(name)_\(type)"
    let result = try shell("ssh-keygen -q -t \(type) -N \(shellQuote(passphrase)) -C test-\(name) -f \(path)")
    guard result.status == 0 else { throw TestSetupError("ssh-keygen failed: \(result.output)") }
    return path
}

func readText(_ path: String) throws -> String {
    try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
}

let isRoot = getuid() == 0

/// Whether a TCP connect to 127.0.0.1:port succeeds.
func canConnect(port: Int, host: String = "127.0.0.1") -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr(host)
    address.sin_port = UInt16(port).bigEndian
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}
