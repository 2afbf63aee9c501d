import Foundation

/// How one task ended on one host.
public enum HostOutcome: Sendable, Hashable, CustomStringConvertible {
    /// The remote command exited with this status (0 is success).
    case exited(status: Int32)
    /// The remote command was killed by a signal (name without `SIG`, e.g. `TERM`).
    case signalled(String)
    /// The command ran longer than the command timeout and was stopped.
    case timedOut(after: Duration)
    /// Could not connect, authenticate or open a channel; the message says which.
    case connectionFailed(String)
    /// Not run, e.g. because an earlier task failed on this host or the run was interrupted.
    case skipped(reason: String)

    /// True only for exit status 0.
    public var isSuccess: Bool { self == .exited(status: 0) }

    /// True for outcomes that make the run fail (everything except success and skipped).
    public var isFailure: Bool {
        switch self {
        case .exited(let status): return status != 0
        case .signalled, .timedOut, .connectionFailed: return true
        case .skipped: return false
        }
    }

    /// The exit status, if the command exited.
    public var exitStatus: Int32? {
        if case .exited(let status) = self { return status }
        return nil
    }

    /// Stable short name: `ok`, `exit`, `signal`, `timeout`, `connection_error`, `skipped`.
    public var kind: String {
        switch self {
        case .exited(let status): return status == 0 ? "ok" : "exit"
        case .signalled: return "signal"
        case .timedOut: return "timeout"
        case .connectionFailed: return "connection_error"
        case .skipped: return "skipped"
        }
    }

    /// Compact form for tables: `ok`, `exit 1`, `signal TERM`, `timeout 10m00s`, `conn error`, `skipped`.
    public var description: String {
        switch self {
        case .exited(let status): return status == 0 ? "ok" : "exit \(status)"
        case .signalled(let signal): return "signal \(signal)"
        case .timedOut(let after): return "timeout \(DurationText.format(after))"
        case .connectionFailed: return "conn error"
        case .skipped: return "skipped"
        }
    }
}

/// Which remote stream output came from.
public enum RemoteStream: String, Sendable, Hashable, CaseIterable {
    /// Standard output (`out:` in text).
    case stdout
    /// Standard error (`err:` in text).
    case stderr
}

/// The result of one task on one host.
public struct HostTaskResult: Sendable, Hashable {
    /// Host name.
    public var host: String
    /// Task as written (e.g. `app.start:goreplay`).
    public var task: String
    /// How it ended.
    public var outcome: HostOutcome
    /// Wall time from start to finish.
    public var duration: Duration
    /// Last non-empty stderr line, kept for the summary of failures.
    public var lastStderrLine: String?
    /// When it finished.
    public var time: Date

    /// Creates a result.
    public init(
        host: String, task: String, outcome: HostOutcome, duration: Duration,
        lastStderrLine: String? = nil, time: Date
    ) {
        self.host = host
        self.task = task
        self.outcome = outcome
        self.duration = duration
        self.lastStderrLine = lastStderrLine
        self.time = time
    }
}

/// The end of a run.
public struct RunSummary: Sendable, Hashable {
    /// Environment name.
    public var environment: String
    /// Hosts in selection order (rows of the summary table).
    public var hosts: [String]
    /// Tasks as written, in order (columns of the summary table).
    public var tasks: [String]
    /// Every result, in completion order.
    public var results: [HostTaskResult]
    /// Whether the run was interrupted.
    public var interrupted: Bool
    /// Wall time of the whole run.
    public var duration: Duration
    /// When it ended.
    public var time: Date

    /// Creates a summary.
    public init(
        environment: String, hosts: [String], tasks: [String], results: [HostTaskResult],
        interrupted: Bool, duration: Duration, time: Date
    ) {
        self.environment = environment
        self.hosts = hosts
        self.tasks = tasks
        self.results = results
        self.interrupted = interrupted
        self.duration = duration
        self.time = time
    }

    /// The exit code these results give (see ``FleetExitCode/forRun(outcomes:interrupted:)``).
    public var exitCode: FleetExitCode {
        FleetExitCode.forRun(outcomes: results.map(\.outcome), interrupted: interrupted)
    }

    /// Hosts with at least one failed task, in host order.
    public var failedHosts: [String] {
        let failed = Set(results.filter(\.outcome.isFailure).map(\.host))
        return hosts.filter(failed.contains)
    }
}

/// Something that happened during a run, for renderers (text, JSON Lines) and the audit log.
public enum FleetEvent: Sendable, Hashable {
    /// The run is about to start: environment, selected hosts and tasks in order.
    case runStarted(environment: String, hosts: [String], tasks: [String], time: Date)
    /// A task started on a host; `command` is the remote command line, when there is one.
    case taskStarted(host: String, task: String, command: String?, time: Date)
    /// Bytes of remote output, in any chunking; renderers buffer them into whole lines per host and stream.
    case output(host: String, stream: RemoteStream, bytes: [UInt8], time: Date)
    /// A task finished (or was skipped) on a host.
    case hostFinished(HostTaskResult)
    /// A message from govuk-fab itself, about one host or (with `host` nil) the run.
    case notice(host: String?, message: String, time: Date)
    /// The run ended.
    case summary(RunSummary)

    /// Convenience for text output.
    public static func output(host: String, stream: RemoteStream, text: String, time: Date) -> FleetEvent {
        .output(host: host, stream: stream, bytes: Array(text.utf8), time: time)
    }
}
