import Foundation
import SSHTransport

/// What a task gets for one host: the host, the run's settings, and a
/// connected session wrapped so output streams into the run's events.
public struct HostContext: Sendable {
    public let host: Host
    public let run: RunContext
    let session: SSHSession
    /// The SSH user the session logged in as.
    public let user: String
    let taskName: String
    let emit: @Sendable (FleetEvent) -> Void
    let stderrTail: StderrTail

    init(host: Host, run: RunContext, session: SSHSession, user: String, taskName: String,
         emit: @escaping @Sendable (FleetEvent) -> Void, stderrTail: StderrTail) {
        self.host = host
        self.run = run
        self.session = session
        self.user = user
        self.taskName = taskName
        self.emit = emit
        self.stderrTail = stderrTail
    }

    public var inventory: Inventory { run.inventory }

    /// Runs `command` on the host. With `sudo`, it runs through `sudo -n`
    /// (never prompts: a host whose sudo wants a password fails with a clear
    /// message instead of hanging); as root, sudo is skipped. With `echo`,
    /// output lines appear as `[host] out:`/`err:` events as they arrive.
    public func execute(
        _ command: String, sudo: Bool = false, echo: Bool = true, timeout: Duration? = nil
    ) async throws -> RemoteResult {
        let remote = sudo && user != "root" ? Self.sudoCommand(command) : command
        let host = self.host.name
        let emit = self.emit
        let collector = OutputCollector()
        let tail = stderrTail
        let result = try await session.execute(remote, timeout: timeout ?? run.commandTimeout) { chunk in
            collector.append(chunk)
            if chunk.stream == .stderr { tail.append(chunk.bytes) }
            if echo {
                emit(.output(host: host, stream: chunk.stream == .stdout ? .stdout : .stderr,
                             bytes: chunk.bytes, time: Date()))
            }
        }
        let (out, err) = collector.contents
        let stderr = String(decoding: err, as: UTF8.self)
        let needsPassword = sudo && user != "root" && result.exitStatus == 1
            && (stderr.contains("a password is required") || stderr.contains("a terminal is required"))
        return RemoteResult(
            exitStatus: result.exitStatus, exitSignal: result.exitSignal, timedOut: result.timedOut,
            duration: result.duration, stdout: String(decoding: out, as: UTF8.self), stderr: stderr,
            sudoNeedsPassword: needsPassword)
    }

    /// Uploads a local file (SFTP to a temporary name, then moved into place).
    public func upload(file localPath: String, to remotePath: String, mode: Int32) async throws {
        try await session.upload(file: localPath, to: remotePath, mode: mode)
    }

    /// Uploads bytes (SFTP to a temporary name, then moved into place).
    public func upload(data: [UInt8], to remotePath: String, mode: Int32) async throws {
        try await session.upload(data: data, to: remotePath, mode: mode)
    }

    /// A line about this host for the operator, e.g. "marker was 'true', cleared".
    public func notice(_ message: String) {
        emit(.notice(host: host.name, message: message, time: Date()))
    }

    /// `sudo -n` never asks for a password; `sh -c` gets the command quoted
    /// exactly once.
    public static func sudoCommand(_ command: String) -> String {
        "sudo -n -- /bin/sh -c \(shellQuote(command))"
    }
}

/// A finished remote command with its output collected.
public struct RemoteResult: Sendable, Hashable {
    public var exitStatus: Int32
    public var exitSignal: String?
    public var timedOut: Bool
    public var duration: Duration
    public var stdout: String
    public var stderr: String
    /// sudo refused because it wanted a password.
    public var sudoNeedsPassword: Bool

    public var succeeded: Bool { exitStatus == 0 && exitSignal == nil && !timedOut }

    /// The host outcome this result stands for.
    public var outcome: HostOutcome {
        if timedOut { return .timedOut(after: duration) }
        if let exitSignal { return .signalled(exitSignal) }
        return .exited(status: exitStatus)
    }

    public init(exitStatus: Int32, exitSignal: String? = nil, timedOut: Bool = false, duration: Duration = .zero,
                stdout: String = "", stderr: String = "", sudoNeedsPassword: Bool = false) {
        self.exitStatus = exitStatus
        self.exitSignal = exitSignal
        self.timedOut = timedOut
        self.duration = duration
        self.stdout = stdout
        self.stderr = stderr
        self.sudoNeedsPassword = sudoNeedsPassword
    }
}
