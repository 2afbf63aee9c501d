import Foundation
import SSHTransport

/// What a task gets for one host: the host, the run's settings, and a
/// connected session wrapped so output streams into the run's events.
public struct HostContext: Sendable {
    public let host: FleetHost
    public let run: RunContext
    let session: SSHSession
    /// The SSH user the session logged in as.
    public let user: String
    let taskName: String
    let emit: @Sendable (FleetEvent) -> Void
    let stderrTail: StderrTail

    init(
        host: FleetHost, run: RunContext, session: SSHSession, user: String, taskName: String,
        emit: @escaping @Sendable (FleetEvent) -> Void, stderrTail: StderrTail
    ) {
        self.host = host
        self.run = run
        self.session = session
        self.user = user
        self.taskName = taskName
        self.emit = emit
        self.stderrTail = stderrTail
    }

    public var inventory: Inventory { run.inventory }

    /// The output a result keeps unless the caller says otherwise: enough for any state a task parses,
    /// small enough that a flood on many hosts at once stays in a few megabytes.
    public static let defaultKeptOutput = 1 << 20

    /// Runs `command` on the host. With `sudo`, it runs through `sudo -n`
    /// (never prompts: a host whose sudo wants a password fails with a clear
    /// message instead of hanging), and its watcher runs as root inside sudo, so a
    /// timeout or Ctrl-C stops everything it started; as root, sudo is skipped.
    /// With `echo`, output lines appear as `[host] out:`/`err:` events as they arrive.
    ///
    /// Output streams through; the result keeps the first `keepOutput` bytes of each
    /// stream. A command run for its output (`echo: false`) that passes that limit
    /// throws ``OutputLimitExceeded``, since a parser would otherwise read half a state.
    public func execute(
        _ command: String, sudo: Bool = false, echo: Bool = true, timeout: Duration? = nil,
        keepOutput: Int = HostContext.defaultKeptOutput
    ) async throws -> RemoteResult {
        let asRoot = sudo && user != "root"
        let host = self.host.name
        let emit = self.emit
        let collector = BoundedOutput(limit: keepOutput)
        let tail = stderrTail
        let limit = timeout ?? run.commandTimeout
        let result = try await session.execute(command, sudo: asRoot, timeout: limit) { chunk in
            collector.append(chunk)
            if chunk.stream == .stderr { tail.append(chunk.bytes) }
            if echo {
                emit(
                    .output(
                        host: host, stream: chunk.stream == .stdout ? .stdout : .stderr,
                        bytes: chunk.bytes, time: Date()))
            }
        }
        let (out, err, passed) = collector.contents
        if passed && !echo { throw OutputLimitExceeded(host: host, limit: keepOutput) }
        let stderr = String(decoding: err, as: UTF8.self)
        let needsPassword =
            asRoot && result.exitStatus == 1
            && (stderr.contains("a password is required") || stderr.contains("a terminal is required"))
        return RemoteResult(
            exitStatus: result.exitStatus, exitSignal: result.exitSignal, timedOut: result.timedOut,
            duration: result.duration, stdout: String(decoding: out, as: UTF8.self), stderr: stderr,
            sudoNeedsPassword: needsPassword, outputTruncated: passed, timeoutLimit: limit)
    }

    /// Uploads a local file (SFTP to a temporary name, then moved into place).
    public func upload(file localPath: String, to remotePath: String, mode: Int32) async throws {
        try await session.upload(file: localPath, to: remotePath, mode: mode)
    }

    /// Uploads bytes (SFTP to a temporary name, then moved into place).
    public func upload(data: [UInt8], to remotePath: String, mode: Int32) async throws {
        try await session.upload(data: data, to: remotePath, mode: mode)
    }

    /// Downloads a remote file over SFTP as the login user, streaming it to `localPath` (a new
    /// temporary name beside it, then a rename; never through a symlink). With `limit`, a larger file
    /// fails with ``SSHError/Kind/fileTooLarge(size:limit:)`` and leaves nothing. Returns the bytes written.
    /// Files only root may read need copying first (see `replay-report`): SFTP has no sudo.
    @discardableResult
    public func download(_ remotePath: String, to localPath: String, limit: Int? = nil) async throws -> Int {
        try await session.download(remotePath, to: localPath, limit: limit)
    }

    /// A line about this host for the operator, e.g. "marker was 'true', cleared".
    public func notice(_ message: String) {
        emit(.notice(host: host.name, message: message, time: Date()))
    }

    /// What `--dry-run` shows for a sudo'd command: `sudo -n` never asks for a password; `sh -c` gets
    /// the command quoted exactly once. (What is sent also carries the watcher; see
    /// `SSHSession.execute(_:sudo:timeout:onOutput:)`.)
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
    /// The command printed more than the caller kept; `stdout`/`stderr` hold the start.
    public var outputTruncated: Bool
    /// The command timeout it ran under, if any.
    public var timeoutLimit: Duration?

    public var succeeded: Bool { exitStatus == 0 && exitSignal == nil && !timedOut }

    /// The host outcome this result stands for.
    public var outcome: HostOutcome {
        // The limit, not the wall time (which includes the kill grace and any local slack).
        if timedOut { return .timedOut(after: timeoutLimit ?? duration) }
        if let exitSignal { return .signalled(exitSignal) }
        return .exited(status: exitStatus)
    }

    public init(
        exitStatus: Int32, exitSignal: String? = nil, timedOut: Bool = false, duration: Duration = .zero,
        stdout: String = "", stderr: String = "", sudoNeedsPassword: Bool = false,
        outputTruncated: Bool = false, timeoutLimit: Duration? = nil
    ) {
        self.exitStatus = exitStatus
        self.exitSignal = exitSignal
        self.timedOut = timedOut
        self.duration = duration
        self.stdout = stdout
        self.stderr = stderr
        self.sudoNeedsPassword = sudoNeedsPassword
        self.outputTruncated = outputTruncated
        self.timeoutLimit = timeoutLimit
    }
}

/// A command run for its output printed more than the task reads.
public struct OutputLimitExceeded: Error, CustomStringConvertible, Sendable {
    public var host: String
    public var limit: Int

    public var description: String {
        "the command's output on \(host) passed the \(limit / 1024) KiB this task reads; "
            + "its state is not what the task expects (run the command with do: to see it)"
    }
}
