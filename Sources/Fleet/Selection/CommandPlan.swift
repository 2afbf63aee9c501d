import Foundation

/// What a command line will do: each task with the hosts it runs on.
///
/// As in Fabric 1, selectors accumulate left to right and each task runs on every host
/// selected before it; `-H` hosts count as selected before the first word.
public struct CommandPlan: Sendable, Hashable {
    /// One task and its hosts.
    public struct Step: Sendable, Hashable {
        /// The task.
        public var task: TaskInvocation
        /// Hosts it runs on, in selection order (empty for host-less tasks such as `classes`).
        public var hosts: [FleetHost]
    }

    /// Steps in command-line order.
    public var steps: [Step]
    /// Warnings from host selection.
    public var warnings: [String]

    /// Every host any step runs on, first-selected first.
    public var allHosts: [FleetHost] {
        var seen = Set<String>()
        return steps.flatMap(\.hosts).filter { seen.insert($0.name.lowercased()).inserted }
    }

    /// Tasks that need no hosts (they read only the inventory).
    public static let defaultHostlessTasks: Set<String> = ["classes", "help"]

    /// Builds a plan, resolving every selector before anything runs.
    ///
    /// A task with its own `host=`/`hosts=`/`role=`/`roles=` runs on exactly those hosts (and
    /// the node classes named as roles) instead of the ones selected before it, as in Fabric 1;
    /// its `exclude_hosts=` and the global `-x` are removed from whichever hosts it gets.
    ///
    /// - Parameters:
    ///   - words: parsed positional words (``FabricCommandLine/parse(_:freeFormTasks:indexOffset:)``).
    ///   - explicitHosts: `-H` values, already split on commas.
    ///   - roles: `-R` node classes, selected with `-H` before the first word.
    ///   - excluding: `-x` host names removed from every step.
    ///   - knownTasks: when given, every task name is checked against it first, so a mistyped
    ///     task is reported as such rather than as a selector problem.
    public static func make(
        words: [CommandWord], inventory: Inventory, explicitHosts: [String] = [], roles: [String] = [],
        excluding: [String] = [], hostlessTasks: Set<String> = defaultHostlessTasks, knownTasks: Set<String>? = nil
    ) throws(SelectionError) -> CommandPlan {
        if let knownTasks {
            for case .task(let task) in words where !knownTasks.contains(task.name) {
                // A bare host or class name is a selector typed without its prefix.
                var suggestions: [String] = []
                if let host = inventory.host(named: task.name) { suggestions.append("-H \(host.name)") }
                if inventory.hosts.contains(where: { Inventory.dashless($0.nodeClass) == Inventory.dashless(task.name) }
                ) {
                    suggestions.append("class:\(task.name)")
                }
                suggestions += NameSuggestions.near(task.name, in: knownTasks.sorted(), limit: 3)
                throw SelectionError(subject: task.raw, problem: .unknownTask(task.name, suggestions: suggestions))
            }
        }
        var selectors: [Selector] = explicitHosts.isEmpty ? [] : [.hosts(explicitHosts)]
        if !roles.isEmpty { selectors.append(.nodeClass(roles)) }
        var steps: [Step] = []
        var warnings: [String] = []
        var pendingSelector: Selector?
        var cached: (count: Int, selection: HostSelection)?
        func note(_ selection: HostSelection) {
            warnings += selection.warnings.filter { !warnings.contains($0) }
        }
        for word in words {
            switch word {
            case .selector(let selector):
                selectors.append(selector)
                pendingSelector = selector
            case .task(let task):
                pendingSelector = nil
                // Checked here so the error names the task word, not -x.
                for name in task.excludeHosts where inventory.host(named: name) == nil {
                    throw SelectionError(
                        subject: task.raw,
                        problem: .unknownExclusion(
                            name, suggestions: NameSuggestions.near(name, in: inventory.hosts.map(\.name), limit: 3)))
                }
                if hostlessTasks.contains(task.name) {
                    if task.hasOwnHosts || !task.excludeHosts.isEmpty {
                        throw SelectionError(subject: task.raw, problem: .hostKeywordsOnHostlessTask(task: task.name))
                    }
                    steps.append(Step(task: task, hosts: []))
                    continue
                }
                if task.hasOwnHosts {
                    var own: [Selector] = task.hosts.isEmpty ? [] : [.hosts(task.hosts)]
                    if !task.roles.isEmpty { own.append(.nodeClass(task.roles)) }
                    let selection = try inventory.select(own, excluding: excluding + task.excludeHosts)
                    note(selection)
                    steps.append(Step(task: task, hosts: selection.hosts))
                    continue
                }
                guard !selectors.isEmpty else {
                    throw SelectionError(subject: task.raw, problem: .taskWithoutHosts(task: task.name))
                }
                if !task.excludeHosts.isEmpty {
                    let selection = try inventory.select(selectors, excluding: excluding + task.excludeHosts)
                    note(selection)
                    steps.append(Step(task: task, hosts: selection.hosts))
                    continue
                }
                if cached?.count != selectors.count {
                    let selection = try inventory.select(selectors, excluding: excluding)
                    note(selection)
                    cached = (selectors.count, selection)
                }
                steps.append(Step(task: task, hosts: cached?.selection.hosts ?? []))
            }
        }
        if let pendingSelector, !steps.isEmpty {
            throw SelectionError(subject: pendingSelector.description, problem: .selectorAfterLastTask)
        }
        guard !steps.isEmpty else {
            let subject = selectors.map(\.description).joined(separator: " ")
            throw SelectionError(subject: subject.isEmpty ? "command line" : subject, problem: .noTasks)
        }
        return CommandPlan(steps: steps, warnings: warnings)
    }
}

/// A class and how many hosts have it, for the `classes` task.
public struct ClassCount: Sendable, Hashable {
    /// Class name.
    public var name: String
    /// Hosts with it.
    public var hostCount: Int
}

/// Data for the read-only `classes` task.
public struct ClassSummary: Sendable, Hashable {
    /// Node classes (`class:`), sorted by name.
    public var nodeClasses: [ClassCount]
    /// Puppet classes (`puppet_class:`), lower-cased and sorted by name.
    public var puppetClasses: [ClassCount]
}

extension Inventory {
    /// Data for the `classes` task: every node class and puppet class with its host count.
    public func classSummary() -> ClassSummary {
        func counts(_ names: [String]) -> [ClassCount] {
            Dictionary(names.map { ($0, 1) }, uniquingKeysWith: +)
                .map { ClassCount(name: $0.key, hostCount: $0.value) }
                .sorted { $0.name < $1.name }
        }
        return ClassSummary(
            nodeClasses: counts(hosts.map(\.nodeClass).filter { !$0.isEmpty }),
            // Titles are case-insensitive (`Gor` is `gor`), so they are counted in lower case.
            puppetClasses: counts(hosts.flatMap { Array(Set($0.puppetClasses.map(Inventory.normalisedClass))) }))
    }

    /// Data for the `hosts` task: the hosts sorted by name, numbers compared numerically
    /// (`cache-2` before `cache-10`), as Fabric printed them.
    public static func sortedForListing(_ hosts: [FleetHost]) -> [FleetHost] {
        hosts.sorted { $0.name.compare($1.name, options: [.numeric, .caseInsensitive]) == .orderedAscending }
    }
}
