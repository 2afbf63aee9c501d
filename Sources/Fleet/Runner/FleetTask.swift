import Foundation
import Logging
import SSHTransport

/// A built-in task or playbook, ready to run on hosts: `sdo:…`, `app.start:…`,
/// `recover-goreplay`. The runner knows tasks only through this protocol, so
/// tasks live in their own target and are tested alone.
public protocol FleetTask: Sendable {
    /// The command-line word this task came from, e.g. `sdo:rm /etc/x`.
    var invocation: TaskInvocation { get }
    /// Whether the task changes hosts: changing tasks need confirmation in
    /// environments with `confirm_changes`, read-only ones never ask.
    var changesHosts: Bool { get }
    /// How `--dry-run` treats the task.
    var dryRunMode: DryRunMode { get }
    /// Checks made before any connection, e.g. the data-sync window: by the CLI once before the
    /// run (and before asking for confirmation), and by the runner again before each host.
    func preflight(_ context: RunContext) throws(TaskRefusal)
    /// The exact remote commands the task would run on `host`, for `--dry-run`.
    func plannedCommands(on host: FleetHost, context: RunContext) -> [String]
    /// Runs the task on one connected host.
    func run(on host: HostContext) async throws -> TaskOutcome
    /// Combines per-host results into an exit status when the task has its
    /// own exit semantics (monitoring checks); nil keeps the runner's codes.
    func exitStatus(for outcomes: [TaskOutcome]) -> Int32?
    /// The host's outcome when it is known without connecting (a check that
    /// is suspended inside the data-sync window); nil connects and runs.
    func outcomeWithoutConnecting(on host: FleetHost, context: RunContext) -> TaskOutcome?
    /// Runs once, locally, after every host of the task's step has finished, with every host's result
    /// (also those that failed, were skipped or never reached): for tasks whose product is one for the
    /// fleet, such as a report built from every host's files. nil adds nothing.
    func finish(_ step: StepResults, context: RunContext) async -> FleetConclusion?
}

extension FleetTask {
    public var dryRunMode: DryRunMode { .printCommands }
    public func preflight(_ context: RunContext) throws(TaskRefusal) {}
    public func exitStatus(for outcomes: [TaskOutcome]) -> Int32? { nil }
    public func outcomeWithoutConnecting(on host: FleetHost, context: RunContext) -> TaskOutcome? { nil }
    public func finish(_ step: StepResults, context: RunContext) async -> FleetConclusion? { nil }
}

/// What a task's ``FleetTask/finish(_:context:)`` step is given: one task over its hosts, finished.
public struct StepResults: Sendable {
    /// The task as written.
    public var task: String
    /// Every host of the step, in host order; a host that never ran has a `skipped` outcome saying why.
    public var hosts: [TaskOutcomeRecord]
    /// The run was interrupted (Ctrl-C) during or before the step.
    public var interrupted: Bool

    public init(task: String, hosts: [TaskOutcomeRecord], interrupted: Bool) {
        self.task = task
        self.hosts = hosts
        self.interrupted = interrupted
    }
}

/// The fleet-wide result of a ``FleetTask/finish(_:context:)`` step.
public struct FleetConclusion: Sendable, Hashable {
    /// What the operator reads, possibly several lines; printed as one notice about the run.
    public var text: String
    /// Why the fleet-wide step itself failed (e.g. a report file could not be written); the run then
    /// exits with at least ``FleetExitCode/hostFailed``.
    public var failure: String?

    public init(text: String, failure: String? = nil) {
        self.text = text
        self.failure = failure
    }
}

/// What `--dry-run` does for a task.
public enum DryRunMode: Sendable, Hashable {
    /// Print the commands, connect to nothing.
    case printCommands
    /// Connect and read state with read-only commands, then print the
    /// per-host plan (recovery plans depend on what each host is in).
    case readStateOnly
}

/// A task's refusal to run at all, before any host is touched.
public struct TaskRefusal: Error, Sendable, CustomStringConvertible {
    public var task: String
    public var reason: String
    public var remedy: String?

    public init(task: String, reason: String, remedy: String? = nil) {
        self.task = task
        self.reason = reason
        self.remedy = remedy
    }

    public var description: String {
        "\(task): refused: \(reason)" + (remedy.map { " — \($0)" } ?? "")
    }
}

/// A check task's result in monitoring-plugin terms (Nagios/Icinga).
public enum CheckStatus: Int32, Sendable, Hashable, Comparable, CustomStringConvertible {
    case ok = 0
    case warning = 1
    case critical = 2
    case unknown = 3

    public static func < (a: CheckStatus, b: CheckStatus) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .ok: "OK"
        case .warning: "WARNING"
        case .critical: "CRITICAL"
        case .unknown: "UNKNOWN"
        }
    }
}

/// How a task ended on one host.
public struct TaskOutcome: Sendable, Hashable {
    /// How the host ended: exit status, skipped, unreachable.
    public var hostOutcome: HostOutcome
    /// One line for the summary: what was found and done.
    public var message: String?
    /// Set by check tasks.
    public var checkStatus: CheckStatus?
    /// Whether the task changed anything on the host.
    public var changed: Bool

    public init(
        hostOutcome: HostOutcome, message: String? = nil, checkStatus: CheckStatus? = nil, changed: Bool = false
    ) {
        self.hostOutcome = hostOutcome
        self.message = message
        self.checkStatus = checkStatus
        self.changed = changed
    }

    public static func ok(_ message: String? = nil, changed: Bool = false) -> TaskOutcome {
        TaskOutcome(hostOutcome: .exited(status: 0), message: message, changed: changed)
    }

    public static func failed(status: Int32 = 1, _ message: String) -> TaskOutcome {
        TaskOutcome(hostOutcome: .exited(status: status), message: message)
    }
}

/// Settings shared by every host of one run.
public struct RunContext: Sendable {
    public var inventory: Inventory
    public var time: TimeSource
    public var dryRun: Bool
    /// `--force`: run even inside the data-sync window.
    public var force: Bool
    public var commandTimeout: Duration?
    public var logger: Logger
    /// `--set KEY=VALUE,…` (Fabric's `env` settings), for playbooks; a bare `KEY` is `"True"`.
    public var settings: [String: String]
    /// The local user, home, agent socket and variables, read once by the CLI.
    public var local: LocalEnvironment
    /// Each host's connection as the run makes it (the CLI layers ssh_config in); nil: from the
    /// inventory and ``local`` alone. `--dry-run` shows the login user this gives.
    public var connections: HostConnectionResolver?

    /// `local` defaults to the process's for library callers and tests; the CLI passes its own.
    public init(
        inventory: Inventory, time: TimeSource = .system, dryRun: Bool = false, force: Bool = false,
        commandTimeout: Duration? = nil, logger: Logger = Logger(label: "govuk-fab"), settings: [String: String] = [:],
        local: LocalEnvironment = .current(), connections: HostConnectionResolver? = nil
    ) {
        self.inventory = inventory
        self.time = time
        self.dryRun = dryRun
        self.force = force
        self.commandTimeout = commandTimeout
        self.logger = logger
        self.settings = settings
        self.local = local
        self.connections = connections
    }

    /// The host's connection: ``connections``, else the inventory's settings with `options`.
    public func connection(for host: FleetHost, options: SSHClientOptions = SSHClientOptions()) -> HostConnection {
        connections?(host) ?? HostConnection.fromInventory(host, in: inventory, options: options, localUser: local.user)
    }

    /// The user the run logs in to `host` as.
    public func loginUser(for host: FleetHost) -> String { connection(for: host).endpoint.user }
}
