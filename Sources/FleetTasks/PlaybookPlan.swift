import Fleet
import Foundation

/// Playbook arguments from a task word (`puppet.disable:REASON`, `NAME=VALUE`) and
/// `--set NAME=VALUE`, each validated against its declaration.
func bindArguments(_ invocation: TaskInvocation, of playbook: Playbook, settings: [String: String]) throws(TaskError)
    -> [String: String]
{
    let declared = playbook.arguments
    guard invocation.positional.count <= declared.count else {
        throw TaskError(
            word: invocation.raw,
            problem: .extraArguments(
                task: invocation.name, usage: playbook.usage,
                extra: Array(invocation.positional.dropFirst(declared.count))))
    }
    var given: [String: String] = [:]
    for (argument, value) in zip(declared, invocation.positional) { given[argument.name] = value }
    for keyword in invocation.keywords {
        guard declared.contains(where: { $0.name == keyword.name }) else {
            throw TaskError(
                word: invocation.raw,
                problem: .unknownKeyword(task: invocation.name, keyword: keyword.name, usage: playbook.usage))
        }
        given[keyword.name] = keyword.value
    }
    var values: [String: String] = [:]
    for argument in declared {
        guard let value = given[argument.name] ?? settings[argument.name] ?? argument.defaultValue else {
            throw TaskError(
                word: invocation.raw, problem: .missingArgument(task: invocation.name, usage: playbook.usage))
        }
        if let reason = argument.validate(value) {
            throw TaskError(
                word: invocation.raw,
                problem: .invalidArgument(
                    task: invocation.name, argument: argument.name, value: value, reason: reason))
        }
        values[argument.name] = value
    }
    return values
}

extension TaskRegistry {
    /// Playbooks with `hosts:` of their own: they need no hosts selected before them
    /// (`govuk-fab production puppet.lookup_hieradata:KEY`).
    public var pinnedTaskNames: Set<String> {
        Set(entries.values.compactMap { $0.playbook?.pin == nil ? nil : $0.descriptor.name })
    }

    /// The host tasks one task word becomes on `hosts` (the hosts selected before it).
    /// A built-in task or a plain playbook is one; a playbook with `hosts:` runs on those,
    /// with `runs_once:` on the first, and one with pinned steps, calls or `serial:` becomes
    /// one host task per step (per host when serial), run in order and gated on each other.
    /// The run's inventory, `--set` settings and login users (for a call's `{user}`) come from `context`.
    public func plannedTasks(
        _ invocation: TaskInvocation, hosts: [FleetHost], context: RunContext
    ) throws(TaskError) -> [PlannedTask] {
        let inventory = context.inventory
        guard let entry = entries[invocation.name], let playbook = entry.playbook else {
            return [PlannedTask(task: try makeTask(invocation, inventory: inventory), hosts: hosts)]
        }
        return try expand(
            playbook, invocation, selected: hosts, inventory: inventory, settings: context.settings,
            loginUser: context.loginUser(for:), gates: [], completes: [])
    }

    /// As ``plannedTasks(_:hosts:context:)`` with a context of `inventory` and `settings`.
    public func plannedTasks(
        _ invocation: TaskInvocation, hosts: [FleetHost], inventory: Inventory, settings: [String: String] = [:]
    ) throws(TaskError) -> [PlannedTask] {
        try plannedTasks(invocation, hosts: hosts, context: RunContext(inventory: inventory, settings: settings))
    }

    private func expand(
        _ playbook: Playbook, _ invocation: TaskInvocation, selected: [FleetHost], inventory: Inventory,
        settings: [String: String], loginUser: (FleetHost) -> String, gates: [PlaybookGate],
        completes: [PlaybookCompletion]
    ) throws(TaskError) -> [PlannedTask] {
        let arguments = try bindArguments(invocation, of: playbook, settings: settings)
        var targets = selected
        if let pin = playbook.pin { targets = try resolve(pin, for: invocation, in: inventory) }
        if playbook.runsOnce { targets = Array(targets.prefix(1)) }
        if let maxHosts = playbook.maxHosts, targets.count > maxHosts {
            throw TaskError(
                word: invocation.raw,
                problem: .tooManyHosts(task: invocation.name, limit: maxHosts, selected: targets.count))
        }
        guard playbook.needsExpansion || !gates.isEmpty || !completes.isEmpty else {
            return [
                PlannedTask(
                    task: PlaybookTask(playbook: playbook, invocation: invocation, arguments: arguments), hosts: targets
                )
            ]
        }
        let state = PlaybookRunState()
        let groups = playbook.serial ? targets.map { [$0] } : [targets]
        let count = playbook.steps.count
        var planned: [PlannedTask] = []
        for group in groups {
            for (index, step) in playbook.steps.enumerated() {
                let outerGates = index == 0 ? gates : []
                let outerCompletes = index == count - 1 ? completes : []
                var part = invocation
                part.raw = "\(invocation.raw) (\(index + 1)/\(count))"
                let template = PlaybookTask(playbook: playbook, invocation: invocation, arguments: arguments)
                if case .call(let name, let templates) = step.action {
                    // No loop: validateCalls refused playbooks that call back into themselves.
                    for target in group {
                        let values = template.startingValues(
                            host: target.name, target: target.name, user: loginUser(target), inventory: inventory)
                        let callee = TaskInvocation(
                            name: name, positional: templates.map { $0.render(values) },
                            raw: name
                                + (templates.isEmpty
                                    ? "" : ":" + templates.map { $0.render(values) }.joined(separator: ",")))
                        let callGates =
                            [PlaybookGate(state: state, target: target.name, step: index, condition: step.condition)]
                            + outerGates
                        let callCompletes =
                            [PlaybookCompletion(state: state, target: target.name, step: index)] + outerCompletes
                        if let calleeBook = entries[name]?.playbook {
                            planned += try expand(
                                calleeBook, callee, selected: [target], inventory: inventory, settings: [:],
                                loginUser: loginUser,
                                gates: callGates, completes: callCompletes)
                        } else {
                            let inner = try makeTask(callee, inventory: inventory)
                            planned.append(
                                PlannedTask(
                                    task: GatedTask(
                                        inner: inner, invocation: callee, gates: callGates,
                                        completes: callCompletes), hosts: [target]))
                        }
                    }
                } else if let pin = step.pin {
                    let pinned = try resolve(pin, for: invocation, in: inventory)
                    for target in group {
                        var forTarget = part
                        forTarget.raw = "\(invocation.raw) (\(index + 1)/\(count) for \(target.name))"
                        planned.append(
                            PlannedTask(
                                task: PlaybookTask(
                                    playbook: playbook, invocation: forTarget, arguments: arguments,
                                    stepIndices: [index],
                                    target: target.name, state: state, gates: outerGates, completes: outerCompletes),
                                hosts: pinned))
                    }
                } else {
                    planned.append(
                        PlannedTask(
                            task: PlaybookTask(
                                playbook: playbook, invocation: part, arguments: arguments, stepIndices: [index],
                                target: nil, state: state, gates: outerGates, completes: outerCompletes), hosts: group))
                }
            }
        }
        return planned
    }

    private func resolve(_ pin: HostPin, for invocation: TaskInvocation, in inventory: Inventory) throws(TaskError)
        -> [FleetHost]
    {
        switch pin.resolve(in: inventory) {
        case .success(let hosts): return hosts
        case .failure(let unmatched):
            throw TaskError(
                word: invocation.raw,
                problem: .pinnedHostsMissing(
                    task: invocation.name, pin: pin.description, reason: unmatched.reason, location: pin.location))
        }
    }

    /// Every `call:` names a task that exists, with an acceptable number of arguments;
    /// a read-only playbook calls only read-only tasks; no playbook calls itself.
    func validateCalls() throws(PlaybookError) {
        for entry in entries.values {
            guard let playbook = entry.playbook else { continue }
            for step in playbook.steps {
                guard case .call(let name, let arguments) = step.action else { continue }
                let location = SourceLocation(file: playbook.path, line: step.line, column: step.column)
                guard let callee = entries[name], callee.make != nil else {
                    let near = NameSuggestions.near(name, in: entries.keys.sorted(), limit: 2)
                    throw PlaybookError(
                        .invalidValue(
                            key: "call.task", value: name,
                            reason: "no such task" + NameSuggestions.hint(near) + "; see govuk-fab --list"),
                        at: location)
                }
                if !playbook.changes && callee.descriptor.changesHosts {
                    throw PlaybookError(
                        .invalidValue(
                            key: "call.task", value: name,
                            reason: "it changes hosts but this playbook says changes: false; set changes: true"),
                        at: location)
                }
                if let book = callee.playbook {
                    let required = book.arguments.filter { $0.defaultValue == nil }.count
                    guard (required...book.arguments.count).contains(arguments.count) else {
                        throw PlaybookError(
                            .invalidValue(
                                key: "call.args", value: "\(arguments.count) values",
                                reason: "\(name) takes \(book.usage)"), at: location)
                    }
                    if reaches(playbook.name, from: book, seen: []) {
                        throw PlaybookError(
                            .invalidValue(
                                key: "call.task", value: name,
                                reason: "\(name) calls back into \(playbook.name); remove the loop"), at: location)
                    }
                }
            }
        }
    }

    private func reaches(_ name: String, from playbook: Playbook, seen: Set<String>) -> Bool {
        if playbook.name == name { return true }
        guard !seen.contains(playbook.name) else { return false }
        for step in playbook.steps {
            if case .call(let callee, _) = step.action, let book = entries[callee]?.playbook,
                reaches(name, from: book, seen: seen.union([playbook.name]))
            {
                return true
            }
        }
        return false
    }
}
