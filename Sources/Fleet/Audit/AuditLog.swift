import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// ISO 8601 timestamps in UTC with milliseconds, as used in JSON events and the audit log.
public enum AuditTimestamp {
    /// `2026-11-25T23:30:00.000Z`.
    public static func format(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(secondsFromGMT: 0)
        return formatter.string(from: date)
    }
}

/// One line of the audit log: who ran what, where, and how it went.
/// Which moment of a run an audit line records. A run writes `started` before touching any host,
/// then `finished` (also after Ctrl-C), or `abandoned` when a second Ctrl-C exits at once.
public enum AuditEvent: String, Sendable, Hashable {
    case started, finished, abandoned
}

public struct AuditRecord: Sendable, Hashable {
    /// One host's outcome for one task.
    public struct HostEntry: Sendable, Hashable {
        /// Host name.
        public var host: String
        /// Task as written.
        public var task: String
        /// How it ended.
        public var outcome: HostOutcome

        /// Creates an entry.
        public init(host: String, task: String, outcome: HostOutcome) {
            self.host = host
            self.task = task
            self.outcome = outcome
        }
    }

    /// Local login name of whoever ran the command.
    public var user: String
    /// When the run ended.
    public var time: Date
    /// Environment name.
    public var environment: String
    /// The full command line, `argv[0]` included.
    public var argv: [String]
    /// Per-host, per-task outcomes.
    public var hosts: [HostEntry]
    /// Whether the run was interrupted.
    public var interrupted: Bool
    /// The exit code the run ended with.
    public var exitCode: FleetExitCode
    /// What this line records.
    public var event: AuditEvent = .finished
    /// For `started`: the hosts and tasks about to run.
    public var plannedHosts: [String] = []
    public var plannedTasks: [String] = []
    /// The inventory file the run used, and how it was chosen.
    public var inventory: InventoryOrigin?

    /// Creates a record.
    public init(
        user: String, time: Date, environment: String, argv: [String], hosts: [HostEntry],
        interrupted: Bool, exitCode: FleetExitCode
    ) {
        self.user = user
        self.time = time
        self.environment = environment
        self.argv = argv
        self.hosts = hosts
        self.interrupted = interrupted
        self.exitCode = exitCode
    }

    /// A record from a run's summary.
    public init(user: String, argv: [String], summary: RunSummary) {
        self.init(
            user: user, time: summary.time, environment: summary.environment, argv: argv,
            hosts: summary.results.map { HostEntry(host: $0.host, task: $0.task, outcome: $0.outcome) },
            interrupted: summary.interrupted, exitCode: summary.exitCode)
    }

    /// The line written before a run touches any host.
    public static func started(
        user: String, argv: [String], environment: String, hosts: [String], tasks: [String],
        time: Date = Date()
    ) -> AuditRecord {
        var record = AuditRecord(
            user: user, time: time, environment: environment, argv: argv, hosts: [],
            interrupted: false, exitCode: .success)
        record.event = .started
        record.plannedHosts = hosts
        record.plannedTasks = tasks
        return record
    }

    /// The record as one JSON line (sorted keys, ending in `\n`), through the one encoder.
    public var jsonLine: String {
        JSONLines.encode(Line(self)) + "\n"
    }

    /// The record's JSON shape (docs/audit.md): `started` lists what is planned, the closing
    /// lines every outcome so far.
    private struct Line: Encodable {
        struct Entry: Encodable {
            var host: String
            var task: String
            var outcome: String
            var exitStatus: Int32?
        }

        var event: String
        var user: String
        var time: Date
        var environment: String
        var argv: [String]
        var inventory: String?
        var inventorySource: String?
        var plannedHosts: [String]?
        var tasks: [String]?
        var hosts: [Entry]?
        var interrupted: Bool?
        var exitCode: Int32?

        init(_ record: AuditRecord) {
            event = record.event.rawValue
            user = record.user
            time = record.time
            environment = record.environment
            argv = record.argv
            inventory = record.inventory?.path
            inventorySource = record.inventory?.source.rawValue
            if record.event == .started {
                plannedHosts = record.plannedHosts
                tasks = record.plannedTasks
            } else {
                hosts = record.hosts.map {
                    Entry(host: $0.host, task: $0.task, outcome: $0.outcome.kind, exitStatus: $0.outcome.exitStatus)
                }
                interrupted = record.interrupted
                exitCode = record.exitCode.rawValue
            }
        }
    }
}

/// Why an audit record could not be written.
public struct AuditLogError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The file or directory concerned.
    public var path: String
    /// What failed (from `errno`).
    public var reason: String
    public var description: String { "cannot write audit log \(path): \(reason)" }
}

/// The append-only audit log, `$XDG_STATE_HOME/govuk-fab/audit.jsonl`.
///
/// Each record is written with one `write(2)` on a descriptor opened with `O_APPEND`, so
/// records from concurrent runs never interleave. The file is created with mode 0600 and
/// its directory with 0700.
public struct AuditLog: Sendable {
    /// Path of the log file.
    public let path: String

    /// Uses `path` as the log file.
    public init(path: String) {
        self.path = path
    }

    /// `$XDG_STATE_HOME/govuk-fab/audit.jsonl`, else `$HOME/.local/state/govuk-fab/audit.jsonl`;
    /// `nil` if neither variable is set to an absolute path.
    public init?(environment: [String: String]) {
        if let state = environment["XDG_STATE_HOME"], state.hasPrefix("/") {
            path = "\(state)/govuk-fab/audit.jsonl"
        } else if let home = environment["HOME"], home.hasPrefix("/") {
            path = "\(home)/.local/state/govuk-fab/audit.jsonl"
        } else {
            return nil
        }
    }

    /// Appends `record` as one line, creating the directory and file if needed.
    public func append(_ record: AuditRecord) throws(AuditLogError) {
        try createDirectory((path as NSString).deletingLastPathComponent)
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw AuditLogError(path: path, reason: Self.errnoText()) }
        defer { close(descriptor) }
        let bytes = Array(record.jsonLine.utf8)
        let written = bytes.withUnsafeBytes { buffer in write(descriptor, buffer.baseAddress, buffer.count) }
        guard written == bytes.count else {
            throw AuditLogError(path: path, reason: written < 0 ? Self.errnoText() : "short write")
        }
    }

    /// `mkdir -p` with mode 0700 for every directory it creates.
    private func createDirectory(_ directory: String) throws(AuditLogError) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw AuditLogError(path: directory, reason: "not a directory") }
            return
        }
        let parent = (directory as NSString).deletingLastPathComponent
        if parent != directory, !parent.isEmpty { try createDirectory(parent) }
        guard mkdir(directory, 0o700) == 0 || errno == EEXIST else {
            throw AuditLogError(path: directory, reason: Self.errnoText())
        }
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}

/// A run's audit trail: `started` before any host is touched, then exactly one closing line,
/// `finished` with every host's outcome or `abandoned` (second Ctrl-C) with those known so far.
/// A failure to write is reported once through `warn`, never fatal.
public final class RunAudit: Sendable {
    private let log: AuditLog?
    private let user: String
    private let argv: [String]
    private let inventory: InventoryOrigin?
    private let warn: @Sendable (String) -> Void
    private let state = Mutex<(environment: String, results: [HostTaskResult], closed: Bool, warned: Bool)>(
        ("", [], false, false))

    public init(
        log: AuditLog?, user: String, argv: [String], inventory: InventoryOrigin? = nil,
        warn: @escaping @Sendable (String) -> Void
    ) {
        self.log = log
        self.user = user
        self.argv = argv
        self.inventory = inventory
        self.warn = warn
    }

    /// Writes the `started` line.
    public func started(environment: String, hosts: [String], tasks: [String]) {
        state.withLock { $0.environment = environment }
        var record = AuditRecord.started(user: user, argv: argv, environment: environment, hosts: hosts, tasks: tasks)
        record.inventory = inventory
        write(record)
    }

    /// Follows the run's events, so an abandoned run still records what finished.
    public func observe(_ event: FleetEvent) {
        if case .hostFinished(let result) = event { state.withLock { $0.results.append(result) } }
    }

    /// Writes the `finished` line (once; later calls do nothing).
    public func finished(_ summary: RunSummary) {
        guard close() else { return }
        var record = AuditRecord(user: user, argv: argv, summary: summary)
        record.inventory = inventory
        write(record)
    }

    /// Writes the `abandoned` line for an exit that does not wait for the run (once).
    public func abandoned(exitCode: FleetExitCode = .interrupted) {
        guard close() else { return }
        let (environment, results) = state.withLock { ($0.environment, $0.results) }
        var record = AuditRecord(
            user: user, time: Date(), environment: environment, argv: argv,
            hosts: results.map { AuditRecord.HostEntry(host: $0.host, task: $0.task, outcome: $0.outcome) },
            interrupted: true, exitCode: exitCode)
        record.event = .abandoned
        record.inventory = inventory
        write(record)
    }

    private func close() -> Bool {
        state.withLock { s in
            defer { s.closed = true }
            return !s.closed
        }
    }

    private func write(_ record: AuditRecord) {
        guard let log else { return }
        do {
            try log.append(record)
        } catch {
            let first = state.withLock { s in
                defer { s.warned = true }
                return !s.warned
            }
            if first { warn("\(error)") }
        }
    }
}
