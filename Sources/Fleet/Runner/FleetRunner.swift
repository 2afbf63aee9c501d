import Foundation
import Logging
import SSHTransport

/// What happens to a host after one of its tasks fails.
public enum FailurePolicy: Sendable, Hashable {
    /// The failed host gets no later tasks; the other hosts go on (default).
    case dropFailedHosts
    /// `--warn-only`: a failed host stays in for later tasks.
    case warnOnly
    /// `--abort-on-failure`: after the first failure no new host or task
    /// starts; commands already running finish.
    case abortOnFailure
}

/// How a run is carried out.
public struct RunnerOptions: Sendable {
    /// Hosts worked on at once (1 = `--serial`).
    public var parallelism: Int
    public var failurePolicy: FailurePolicy
    /// Connection settings; identity files, known_hosts and timeouts come
    /// from the inventory unless the command line overrides them.
    public var client: SSHClientOptions
    /// Per-host endpoint, gateway chain and options; nil: the context's
    /// (``RunContext/connection(for:options:)``) with `client`.
    public var connections: HostConnectionResolver?
    /// `-n N`: attempts to connect to a host when the failure is connectivity (refused, timeout,
    /// unresolved), not host key or authentication.
    public var connectionAttempts: Int = 1
    /// `--skip-bad-hosts`: with ``FailurePolicy/abortOnFailure``, a host that cannot be reached
    /// does not abort the run.
    public var skipBadHosts: Bool = false

    public init(
        parallelism: Int, failurePolicy: FailurePolicy = .dropFailedHosts, client: SSHClientOptions,
        connections: HostConnectionResolver? = nil
    ) {
        self.parallelism = max(1, parallelism)
        self.failurePolicy = failurePolicy
        self.client = client
        self.connections = connections
    }
}

/// One task and the hosts it runs on (Fabric: hosts accumulate left to right).
public struct PlannedTask: Sendable {
    public var task: any FleetTask
    public var hosts: [FleetHost]

    public init(task: any FleetTask, hosts: [FleetHost]) {
        self.task = task
        self.hosts = hosts
    }
}

/// The result of a run: the summary the renderers print, and the exit status
/// scripts rely on.
public struct RunReport: Sendable {
    public var summary: RunSummary
    public var outcomes: [TaskOutcomeRecord]
    public var exitStatus: Int32
}

/// One task's outcome on one host, with the task's own message.
public struct TaskOutcomeRecord: Sendable, Hashable {
    public var host: String
    public var task: String
    public var outcome: TaskOutcome

    public init(host: String, task: String, outcome: TaskOutcome) {
        self.host = host
        self.task = task
        self.outcome = outcome
    }
}

/// Runs planned tasks over hosts: each task over every selected host, at most
/// `parallelism` at once, before the next task starts; one SSH session per
/// host for the whole run.
public struct FleetRunner: Sendable {
    public let context: RunContext
    public let options: RunnerOptions
    let emit: @Sendable (FleetEvent) -> Void

    public init(context: RunContext, options: RunnerOptions, emit: @escaping @Sendable (FleetEvent) -> Void) {
        self.context = context
        self.options = options
        self.emit = emit
    }

    /// Runs every step and always returns a report, also when interrupted
    /// (the calling task cancelled): then hosts not finished are reported as
    /// such and the report says `interrupted`.
    public func run(_ steps: [PlannedTask]) async -> RunReport {
        let started = ContinuousClock.now
        let inventory = context.inventory
        var allHosts: [String] = []
        for step in steps { for host in step.hosts where !allHosts.contains(host.name) { allHosts.append(host.name) } }
        let taskNames = steps.map(\.task.invocation.raw)
        emit(.runStarted(environment: inventory.name, hosts: allHosts, tasks: taskNames, time: Date()))

        let reactor: SSHReactor?
        do {
            reactor = try SSHReactor()
        } catch {
            reactor = nil
            emit(.notice(host: nil, message: "cannot start the SSH event loop: \(error)", time: Date()))
        }
        let client = options.client
        let resolve = options.connections ?? { context.connection(for: $0, options: client) }
        let pool = reactor.map {
            ConnectionPool(reactor: $0, resolve: resolve, logger: context.logger, attempts: options.connectionAttempts)
        }

        var results: [HostTaskResult] = []
        var records: [TaskOutcomeRecord] = []
        var failedHosts = Set<String>()
        var aborted = false
        var exitOverride: Int32?
        // A host's session closes as soon as its last step ends, so a large run does not keep every
        // connection (and its sshd) open until the slowest host is done.
        var lastStep: [String: Int] = [:]
        for (index, step) in steps.enumerated() { for host in step.hosts { lastStep[host.name] = index } }

        var finishFailed = false
        for (stepIndex, step) in steps.enumerated() {
            let task = step.task
            let name = task.invocation.raw
            let stepStart = (records: records.count, results: results.count)
            var stepOutcomes: [TaskOutcome] = []
            var pending: [FleetHost] = []
            for host in step.hosts {
                if Task.isCancelled || aborted {
                    let reason =
                        Task.isCancelled ? "interrupted before it started" : "not started: run aborted after a failure"
                    results.append(skip(host, name, reason))
                } else if failedHosts.contains(host.name) && options.failurePolicy != .warnOnly {
                    results.append(skip(host, name, "failed in an earlier task"))
                } else {
                    pending.append(host)
                }
            }
            let closing = Set(pending.filter { lastStep[$0.name] == stepIndex }.map(\.name))
            let finished = await runStep(task: task, hosts: pending, pool: pool, closing: closing, aborted: &aborted)
            for (host, outcome, result) in finished {
                results.append(result)
                records.append(TaskOutcomeRecord(host: host, task: name, outcome: outcome))
                stepOutcomes.append(outcome)
                if outcome.hostOutcome.isFailure { failedHosts.insert(host) }
            }
            // Hosts the step never reached (interrupted or aborted mid-step).
            let reached = Set(finished.map(\.0))
            for host in pending where !reached.contains(host.name) {
                results.append(
                    skip(host, name, Task.isCancelled ? "interrupted" : "not started: run aborted after a failure"))
            }
            if let status = task.exitStatus(for: stepOutcomes) {
                exitOverride = max(exitOverride ?? 0, status)
            }
            if await !conclude(task, step: step, records: records, results: results, stepStart: stepStart) {
                finishFailed = true
            }
        }

        if let pool { await pool.closeAll() }
        reactor?.shutdown()

        let summary = RunSummary(
            environment: inventory.name, hosts: allHosts, tasks: taskNames, results: results,
            interrupted: Task.isCancelled, duration: ContinuousClock.now - started, time: Date())
        emit(.summary(summary))
        var exitStatus = summary.exitCode.rawValue
        if let exitOverride, !summary.interrupted { exitStatus = exitOverride }
        if finishFailed && exitStatus == FleetExitCode.success.rawValue {
            exitStatus = FleetExitCode.hostFailed.rawValue
        }
        return RunReport(summary: summary, outcomes: records, exitStatus: exitStatus)
    }

    /// Runs the task's fleet-wide finish step over this step's results (every host in host order, those
    /// that never ran as skipped with the reason); false if it says it failed.
    private func conclude(
        _ task: any FleetTask, step: PlannedTask, records: [TaskOutcomeRecord], results: [HostTaskResult],
        stepStart: (records: Int, results: Int)
    ) async -> Bool {
        let name = task.invocation.raw
        var byHost: [String: TaskOutcomeRecord] = [:]
        for record in records[stepStart.records...] { byHost[record.host] = record }
        for result in results[stepStart.results...] where byHost[result.host] == nil {
            let reason = { if case .skipped(let why) = result.outcome { why } else { "\(result.outcome)" } }()
            byHost[result.host] = TaskOutcomeRecord(
                host: result.host, task: name,
                outcome: TaskOutcome(hostOutcome: result.outcome, message: reason))
        }
        let hosts = step.hosts.compactMap { byHost[$0.name] }
        let stepResults = StepResults(task: name, hosts: hosts, interrupted: Task.isCancelled)
        guard let conclusion = await task.finish(stepResults, context: context) else { return true }
        if !conclusion.text.isEmpty { emit(.notice(host: nil, message: conclusion.text, time: Date())) }
        if let failure = conclusion.failure {
            emit(.notice(host: nil, message: "\(name): FAILED: \(failure)", time: Date()))
            return false
        }
        return true
    }

    private func skip(_ host: FleetHost, _ task: String, _ reason: String) -> HostTaskResult {
        let result = HostTaskResult(
            host: host.name, task: task, outcome: .skipped(reason: reason),
            duration: .zero, lastStderrLine: reason, time: Date())
        emit(.hostFinished(result))
        return result
    }

    /// Runs one task on `hosts`, at most `parallelism` at once, in host order.
    private func runStep(
        task: any FleetTask, hosts: [FleetHost], pool: ConnectionPool?, closing: Set<String>, aborted: inout Bool
    ) async -> [(String, TaskOutcome, HostTaskResult)] {
        var finished: [(String, TaskOutcome, HostTaskResult)] = []
        var stopStarting = aborted
        await withTaskGroup(of: (String, TaskOutcome, HostTaskResult).self) { group in
            var next = 0
            func startNext() {
                let host = hosts[next]
                next += 1
                group.addTask {
                    let result = await self.runOne(task: task, host: host, pool: pool)
                    if closing.contains(host.name) { await pool?.close(host.name) }
                    return result
                }
            }
            while next < hosts.count && next < options.parallelism { startNext() }
            for await item in group {
                finished.append(item)
                let unreachable = { if case .connectionFailed = item.1.hostOutcome { true } else { false } }()
                if item.1.hostOutcome.isFailure && options.failurePolicy == .abortOnFailure,
                    !(options.skipBadHosts && unreachable)
                {
                    stopStarting = true
                }
                if !stopStarting && !Task.isCancelled && next < hosts.count { startNext() }
            }
        }
        aborted = stopStarting
        // Report in host order, not completion order.
        let order = Dictionary(uniqueKeysWithValues: hosts.enumerated().map { ($1.name, $0) })
        return finished.sorted { (order[$0.0] ?? 0) < (order[$1.0] ?? 0) }
    }

    private func runOne(task: any FleetTask, host: FleetHost, pool: ConnectionPool?) async -> (
        String, TaskOutcome, HostTaskResult
    ) {
        let name = task.invocation.raw
        let started = ContinuousClock.now
        let planned = task.plannedCommands(on: host, context: context)
        // Fabric printed `run: CMD`; a built-in task's multi-line script is
        // noise there (--dry-run prints it in full).
        // A dry run prints each command once, as `would run:`.
        let printsPlan = context.dryRun && task.dryRunMode == .printCommands
        let shown = printsPlan ? nil : planned.first.flatMap { $0.contains("\n") || $0.count > 200 ? nil : $0 }
        emit(.taskStarted(host: host.name, task: name, command: shown, time: Date()))
        let tail = StderrTail()
        let outcome: TaskOutcome

        if let known = task.outcomeWithoutConnecting(on: host, context: context) {
            outcome = known
        } else if let refusal = refusal(of: task) {
            // Checked again per host: the data-sync window can open during a long run.
            outcome = .failed(refusal.description)
        } else if context.dryRun && task.dryRunMode == .printCommands {
            for command in planned { emit(.notice(host: host.name, message: "would run: \(command)", time: Date())) }
            outcome = TaskOutcome(hostOutcome: .skipped(reason: "dry run"), message: "dry run: nothing changed")
        } else if let pool {
            outcome = await connectAndRun(task: task, host: host, pool: pool, tail: tail)
        } else {
            outcome = TaskOutcome(hostOutcome: .connectionFailed("no SSH event loop"), message: "no SSH event loop")
        }
        if let message = outcome.message, !outcome.hostOutcome.isFailure || tail.lastLine == nil {
            emit(.notice(host: host.name, message: message, time: Date()))
        }
        let last = outcome.hostOutcome.isFailure ? (outcome.message ?? tail.lastLine) : nil
        let result = HostTaskResult(
            host: host.name, task: name, outcome: outcome.hostOutcome,
            duration: ContinuousClock.now - started, lastStderrLine: last, time: Date())
        emit(.hostFinished(result))
        return (host.name, outcome, result)
    }

    private func refusal(of task: any FleetTask) -> TaskRefusal? {
        do {
            try task.preflight(context)
            return nil
        } catch {
            return error
        }
    }

    private func connectAndRun(task: any FleetTask, host: FleetHost, pool: ConnectionPool, tail: StderrTail) async
        -> TaskOutcome
    {
        let session: SSHSession
        do {
            session = try await pool.session(for: host)
        } catch is CancellationError {
            return TaskOutcome(
                hostOutcome: .skipped(reason: "interrupted while connecting"), message: "interrupted while connecting")
        } catch {
            let text = "\(error)"
            return TaskOutcome(hostOutcome: .connectionFailed(text), message: text)
        }
        let user = session.endpoint.user
        let hostContext = HostContext(
            host: host, run: context, session: session, user: user,
            taskName: task.invocation.name, emit: emit, stderrTail: tail)
        do {
            return try await task.run(on: hostContext)
        } catch is CancellationError {
            return TaskOutcome(
                hostOutcome: .skipped(reason: "interrupted while running"), message: "interrupted while running")
        } catch let error as SSHError {
            if error.kind.isConnectivity {
                return TaskOutcome(hostOutcome: .connectionFailed("\(error)"), message: "\(error)")
            }
            return TaskOutcome(hostOutcome: .exited(status: 255), message: "\(error)")
        } catch {
            return TaskOutcome(hostOutcome: .exited(status: 1), message: "\(error)")
        }
    }
}
