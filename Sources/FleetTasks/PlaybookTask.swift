import Fleet
import Foundation
import SSHTransport
import Synchronization

/// Runs a validated playbook on one host, step by step (one remote command
/// per step); the first failing step ends the host with its file line.
///
/// A playbook with pinned steps, calls or `serial:` is expanded into several of these,
/// one per step (see `TaskRegistry.plannedTasks`), that share a ``PlaybookRunState``:
/// each runs only when the steps before it finished for the same target host.
public struct PlaybookTask: FleetTask {
    public let playbook: Playbook
    public let invocation: TaskInvocation
    /// Validated argument values by name.
    public let arguments: [String: String]
    /// Indices of the steps this task runs (all of them unless expanded).
    let stepIndices: [Int]
    /// The selected host a pinned step serves; nil: the host it runs on.
    let target: String?
    /// Shared with the other parts of one expanded invocation; nil when not expanded.
    let state: PlaybookRunState?
    /// Callers' preconditions (the step that called this playbook).
    let gates: [PlaybookGate]
    /// Callers' steps marked finished when this part succeeds.
    let completes: [PlaybookCompletion]

    public init(playbook: Playbook, invocation: TaskInvocation, arguments: [String: String] = [:]) {
        self.init(
            playbook: playbook, invocation: invocation, arguments: arguments,
            stepIndices: Array(playbook.steps.indices), target: nil, state: nil, gates: [], completes: [])
    }

    init(
        playbook: Playbook, invocation: TaskInvocation, arguments: [String: String], stepIndices: [Int],
        target: String?, state: PlaybookRunState?, gates: [PlaybookGate], completes: [PlaybookCompletion]
    ) {
        self.playbook = playbook
        self.invocation = invocation
        self.arguments = arguments
        self.stepIndices = stepIndices
        self.target = target
        self.state = state
        self.gates = gates
        self.completes = completes
    }

    public var changesHosts: Bool { playbook.changes }

    public func preflight(_ context: RunContext) throws(TaskRefusal) {
        if playbook.respectDataSyncWindow { try refuseInsideDataSyncWindow(task: playbook.name, context) }
    }

    /// Arguments, built-in names and `let:` values for a step running on `host` for `target`.
    func startingValues(host: String, target: String, user: String, inventory: Inventory) -> [String: String] {
        var values = arguments
        values["host"] = host
        values["target"] = target
        values["environment"] = inventory.name
        values["marker_path"] = inventory.dataSync.marker
        values["user"] = user
        for value in playbook.lets { values[value.name] = value.template.render(values) }
        return values
    }

    /// The remote command of a step, or nil for steps that run nothing.
    func command(_ step: PlaybookStep, host: FleetHost, inventory: Inventory, values: [String: String])
        throws(ServiceNameError) -> (String, sudo: Bool)?
    {
        let control = ServiceControl(manager: inventory.serviceManager(for: host))
        switch step.action {
        case .run(let command, _): return (command.render(values), false)
        case .sudo(let command, _): return (command.render(values), true)
        case .service(let action, let logical, let name):
            let candidates = try serviceCandidates(logical, in: inventory)
            var script = "( \(control.resolvedCommand(action, candidates: candidates)) )"
            if name != nil {
                // Record the state after the action and the name it resolved to.
                script +=
                    "; rc=$?; [ $rc -eq 0 ] || [ $rc -eq 3 -a \(shellQuote(action.rawValue)) = status ] || exit $rc; "
                for (index, candidate) in candidates.enumerated() {
                    script +=
                        (index == 0 ? "if " : "elif ") + "\(control.existsCommand(candidate)); then "
                        + "echo service_name=\(candidate); ( \(control.statusCommand(candidate)) ) >/dev/null 2>&1 "
                        + "&& echo service_state=running || echo service_state=stopped; "
                }
                script += "fi"
            }
            // Status too: as a non-root user `kill -0` on a root daemon says "not running".
            return (script, true)
        case .ensureFile(let path, let content, let mode):
            let target = path.render(values)
            let write = GoReplayScripts.writeFileAtomically(target, content: content, mode: mode)
            let same =
                "[ -f \(shellQuote(target)) ] && printf '%s' \(shellQuote(content)) | cmp -s - \(shellQuote(target))"
                + (mode.map {
                    " && [ \"$(stat -c %a -- \(shellQuote(target)))\" = \(shellQuote(String(Int($0, radix: 8).map { String($0, radix: 8) } ?? $0))) ]"
                } ?? "")
            return ("if \(same); then echo unchanged; else ( \(write) ) && echo changed; fi", true)
        case .readFile(let path, _):
            let target = shellQuote(path.render(values))
            return ("if [ -e \(target) ]; then echo exists; cat -- \(target); else echo missing; fi", true)
        case .readCommand(let command, _, let sudo):
            return (command.render(values), sudo)
        case .check(let command, _, let sudo, let attempts, let every, _):
            let text = command.render(values)
            guard attempts > 1 else { return (text, sudo) }
            let seconds = String(
                format: "%.1f", Double(every.components.seconds) + Double(every.components.attoseconds) / 1e18)
            return (
                "i=1; while :; do ( \(text) ) && exit 0; [ $i -ge \(attempts) ] && exit 1; i=$((i+1)); sleep \(seconds); done",
                sudo
            )
        case .waitForProcess(let name, let timeout, let running):
            return (GoReplayScripts.waitForProcesses(atLeastOne: running, timeout: timeout, name: name), false)
        case .message, .call:
            return nil
        }
    }

    public func plannedCommands(on host: FleetHost, context: RunContext) -> [String] {
        let user = context.loginUser(for: host)
        let values = startingValues(
            host: host.name, target: target ?? host.name, user: user, inventory: context.inventory)
        // A called task shows the condition of the step that calls it.
        let prefix =
            gates.compactMap(\.condition).map { "[when \($0.text)] " }.joined() + (target.map { "[for \($0)] " } ?? "")
        return stepIndices.compactMap { index in
            let step = playbook.steps[index]
            guard
                let (text, sudo) = (try? command(step, host: host, inventory: context.inventory, values: values)) ?? nil
            else {
                return nil
            }
            let remote = remoteCommand(text, sudo: sudo, on: host, in: context)
            return prefix + (step.condition.map { "[when \($0.text)] \(remote)" } ?? remote)
        }
    }

    public func run(on host: HostContext) async throws -> TaskOutcome {
        let targetName = target ?? host.host.name
        var values = startingValues(
            host: host.host.name, target: targetName, user: host.user, inventory: host.inventory)
        if let state {
            // An expanded part: callers' conditions, then this playbook's earlier steps.
            for gate in gates {
                switch gate.admit() {
                case .proceed: continue
                case .skip(let reason):
                    state.halt(targetName, reason)
                    return TaskOutcome(hostOutcome: .skipped(reason: reason), message: reason)
                }
            }
            guard let first = stepIndices.first else { return .ok() }
            switch state.admit(targetName, step: first) {
            case .proceed(let earlier):
                // What earlier steps read; `host`, `user` and `let:` values stay this host's.
                let own = Set(commandBuiltInNames + playbook.lets.map(\.name))
                for (name, value) in earlier where !own.contains(name) { values[name] = value }
            case .skip(let reason): return TaskOutcome(hostOutcome: .skipped(reason: reason), message: reason)
            }
        }
        var messages: [String] = []
        var changed = false
        var ranAny = false
        for index in stepIndices {
            let step = playbook.steps[index]
            if let condition = step.condition, !condition.holds(values) {
                state?.finish(targetName, step: index, values: values)
                if state != nil {
                    let reason = "not needed: `\(condition.text)` is false"
                    return TaskOutcome(hostOutcome: .skipped(reason: reason), message: reason)
                }
                continue
            }
            ranAny = true
            switch try await execute(step, index: index, on: host, values: &values) {
            case .ok(let stepChanged, let message):
                changed = changed || stepChanged
                if let message { messages.append(message) }
                state?.finish(targetName, step: index, values: values)
            case .failed(let reason, let result):
                state?.halt(targetName, "an earlier step failed")
                if let result { return fail(result, host, messages, changed, reason) }
                return TaskOutcome(
                    hostOutcome: .exited(status: 1), message: (messages + [reason]).joined(separator: "; "),
                    changed: changed)
            }
        }
        for completion in completes { completion.mark() }
        let summary =
            messages.isEmpty
            ? (host.run.dryRun ? "dry run: nothing changed" : (ranAny ? "done" : "nothing to do"))
            : messages.joined(separator: "; ")
        return .ok(summary, changed: changed)
    }

    enum StepResult {
        case ok(changed: Bool, message: String?)
        case failed(String, RemoteResult?)
    }

    /// Runs one step, recording what it reads in `values`.
    func execute(_ step: PlaybookStep, index: Int, on host: HostContext, values: inout [String: String]) async throws
        -> StepResult
    {
        let stepLocation = "step \(index + 1) (\((playbook.path as NSString).lastPathComponent):\(step.line))"
        if case .message(let text) = step.action { return .ok(changed: false, message: text.render(values)) }
        guard let (text, sudo) = try command(step, host: host.host, inventory: host.inventory, values: values) else {
            return .ok(changed: false, message: nil)
        }
        if host.run.dryRun { return .ok(changed: false, message: "would run \(stepLocation): \(text)") }
        let echo: Bool
        var timeout: Duration?
        switch step.action {
        case .run, .sudo, .check: echo = true
        default: echo = false
        }
        if case .check(_, _, _, let attempts, let every, _) = step.action, attempts > 1 {
            timeout = every * attempts + (host.run.commandTimeout ?? .seconds(120))
        }
        let result = try await host.execute(text, sudo: sudo, echo: echo, timeout: timeout)
        let output = result.stdout.replacingOccurrences(of: #"\n+$"#, with: "", options: .regularExpression)
        switch step.action {
        case .waitForProcess(let name, let timeout, let running):
            let count = GoReplayScripts.processCount(in: result.stdout)
            values["procs"] = count.map(String.init) ?? ""
            guard result.succeeded else {
                return .failed(
                    "\(stepLocation): \(name): \(count.map(processCountText) ?? "?") "
                        + "after \(DurationText.format(timeout)), wanted \(running ? "at least 1" : "none")", result)
            }
            return .ok(changed: false, message: nil)
        case .readFile(_, let name):
            guard result.succeeded else { return .failed("\(stepLocation): could not read", result) }
            let exists = output.hasPrefix("exists")
            values[name + "_exists"] = exists ? "true" : ""
            values[name] =
                exists
                ? String(result.stdout.dropFirst("exists\n".count))
                    .replacingOccurrences(of: #"\n+$"#, with: "", options: .regularExpression) : ""
            return .ok(changed: false, message: nil)
        case .check(_, let name, _, let attempts, _, let required):
            // A check that cannot run (126/127: not executable, not found) is not a "no":
            // `when: not primary` must never follow from a missing `mongo`.
            if result.sudoNeedsPassword || result.timedOut || result.exitSignal != nil
                || [126, 127].contains(result.exitStatus)
            {
                return .failed(
                    "\(stepLocation) could not run its check: \(lastLine(of: result) ?? "exit \(result.exitStatus)")",
                    result)
            }
            if let name { values[name] = result.succeeded ? "true" : "" }
            if required && !result.succeeded {
                return .failed(
                    "\(stepLocation): check failed\(attempts > 1 ? " \(attempts) times" : ""): "
                        + (lastLine(of: result) ?? "exit \(result.exitStatus)"), nil)
            }
            return .ok(changed: false, message: nil)
        case .readCommand(_, let name, _):
            values[name] = output
        case .service(let action, _, let name):
            if let name {
                for line in output.split(separator: "\n") {
                    if line.hasPrefix("service_name=") { values[name + "_name"] = String(line.dropFirst(13)) }
                    if line.hasPrefix("service_state=") { values[name] = String(line.dropFirst(14)) }
                }
            }
            if action == .status, result.exitStatus == 3 { return .ok(changed: false, message: nil) }
        default:
            break
        }
        guard result.succeeded else {
            return .failed("\(stepLocation) failed: \(lastLine(of: result) ?? "exit \(result.exitStatus)")", result)
        }
        switch step.action {
        case .run(_, let readOnly), .sudo(_, let readOnly): return .ok(changed: !readOnly, message: nil)
        case .service(let action, _, _): return .ok(changed: action.changesHosts, message: nil)
        case .ensureFile: return .ok(changed: output.hasSuffix("changed"), message: nil)
        default: return .ok(changed: false, message: nil)
        }
    }

    private func fail(
        _ result: RemoteResult, _ host: HostContext, _ messages: [String], _ changed: Bool,
        _ reason: String
    ) -> TaskOutcome {
        if result.sudoNeedsPassword { return outcome(of: result, on: host) }
        let text = (messages + [reason]).joined(separator: "; ")
        return TaskOutcome(
            hostOutcome: result.succeeded ? .exited(status: 1) : result.outcome, message: text, changed: changed)
    }
}

/// What the parts of one expanded playbook invocation know about each target host:
/// the values its steps read, which steps finished, and whether it stopped.
final class PlaybookRunState: Sendable {
    struct Progress {
        var values: [String: String] = [:]
        var finished: Set<Int> = []
        var halted: String?
    }

    enum Admission {
        case proceed([String: String])
        case skip(String)
    }

    private let progress = Mutex<[String: Progress]>([:])

    /// Whether step `index` may run for `target`: not halted, and the step before finished.
    func admit(_ target: String, step index: Int) -> Admission {
        progress.withLock { all in
            let current = all[target] ?? Progress()
            if let reason = current.halted { return .skip(reason) }
            if index > 0 && !current.finished.contains(index - 1) {
                let reason = "not run: step \(index) did not finish for \(target)"
                all[target, default: Progress()].halted = reason
                return .skip(reason)
            }
            return .proceed(current.values)
        }
    }

    func finish(_ target: String, step index: Int, values: [String: String]) {
        progress.withLock { all in
            all[target, default: Progress()].finished.insert(index)
            all[target, default: Progress()].values.merge(values) { _, new in new }
        }
    }

    func halt(_ target: String, _ reason: String) {
        progress.withLock { all in
            if all[target, default: Progress()].halted == nil { all[target, default: Progress()].halted = reason }
        }
    }
}

/// A caller's step that must be allowed before a called task's first part runs:
/// the caller's earlier steps finished for its target, and the step's `when:` holds.
struct PlaybookGate: Sendable {
    let state: PlaybookRunState
    let target: String
    let step: Int
    let condition: Condition?

    func admit() -> PlaybookRunState.Admission {
        switch state.admit(target, step: step) {
        case .skip(let reason): return .skip(reason)
        case .proceed(let values):
            if let condition, !condition.holds(values) {
                // The caller's step is done (not needed); the called task does nothing.
                state.finish(target, step: step, values: [:])
                return .skip("not needed: `\(condition.text)` is false")
            }
            return .proceed(values)
        }
    }
}

/// A caller's step to mark finished when the last part of a called task succeeds.
struct PlaybookCompletion: Sendable {
    let state: PlaybookRunState
    let target: String
    let step: Int

    func mark() { state.finish(target, step: step, values: [:]) }
}

/// A built-in task called from a playbook step: runs only when the step is allowed,
/// and marks it finished when it succeeds.
struct GatedTask: FleetTask {
    let inner: any FleetTask
    let invocation: TaskInvocation
    let gates: [PlaybookGate]
    let completes: [PlaybookCompletion]

    var changesHosts: Bool { inner.changesHosts }
    var dryRunMode: DryRunMode { inner.dryRunMode }
    func preflight(_ context: RunContext) throws(TaskRefusal) { try inner.preflight(context) }
    func plannedCommands(on host: FleetHost, context: RunContext) -> [String] {
        let conditions = gates.compactMap(\.condition).map { "[when \($0.text)] " }.joined()
        return inner.plannedCommands(on: host, context: context).map { conditions + $0 }
    }

    func run(on host: HostContext) async throws -> TaskOutcome {
        for gate in gates {
            if case .skip(let reason) = gate.admit() {
                return TaskOutcome(hostOutcome: .skipped(reason: reason), message: reason)
            }
        }
        let outcome = try await inner.run(on: host)
        if !outcome.hostOutcome.isFailure { for completion in completes { completion.mark() } }
        return outcome
    }
}
