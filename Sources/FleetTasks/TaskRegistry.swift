import Fleet
import Foundation

/// What `--list` and `help:TASK` show about a task.
public struct TaskDescriptor: Sendable, Hashable {
    /// Name as typed, e.g. `app.start`.
    public let name: String
    /// How to call it, e.g. `sdo:COMMAND`.
    public let usage: String
    /// One line.
    public let summary: String
    /// The `help:TASK` text.
    public let details: String
    /// Whether it changes hosts (changing tasks need confirmation in production).
    public let changesHosts: Bool
    /// `built-in`, or the playbook's path.
    public let source: String
    /// False for `hosts`, `classes` and `help`, which the command line answers
    /// from the inventory without connecting.
    public let runsOnHosts: Bool

    public init(
        name: String, usage: String, summary: String, details: String, changesHosts: Bool,
        source: String = "built-in", runsOnHosts: Bool = true
    ) {
        self.name = name
        self.usage = usage
        self.summary = summary
        self.details = details
        self.changesHosts = changesHosts
        self.source = source
        self.runsOnHosts = runsOnHosts
    }
}

extension TaskDescriptor {
    /// The module of a task, as fabric-scripts' modules: `puppet` for `puppet.disable` and
    /// for the module's default task `puppet`; '' for top-level tasks such as `do`.
    public var module: String {
        if let dot = name.firstIndex(of: ".") { return String(name[..<dot]) }
        return TaskDescriptor.moduleDefaults.contains(name) ? name : ""
    }

    /// Default tasks of fabric-scripts modules (`fab production all apt`).
    static let moduleDefaults: Set<String> = ["puppet", "apt", "cache"]

    /// Top-level tasks first, then each module in name order, tasks sorted by name.
    public static func groupedByModule(_ descriptors: [TaskDescriptor]) -> [(module: String, tasks: [TaskDescriptor])] {
        let groups = Dictionary(grouping: descriptors, by: \.module)
        return groups.keys.sorted().map { (module: $0, tasks: groups[$0]!.sorted { $0.name < $1.name }) }
    }
}

/// Every task govuk-fab knows: the built-ins and the playbooks, validated
/// when the registry is made so a bad playbook fails before any host is touched.
public struct TaskRegistry: Sendable {
    typealias Factory = @Sendable (TaskInvocation, Inventory) throws(TaskError) -> any FleetTask

    struct Entry: Sendable {
        var descriptor: TaskDescriptor
        /// nil for tasks the command line handles itself.
        var make: Factory?
        /// Set for playbooks, which `plannedTasks` may expand into several host tasks.
        var playbook: Playbook?
    }

    let entries: [String: Entry]

    init(entries: [Entry]) {
        self.entries = Dictionary(entries.map { ($0.descriptor.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The built-in tasks plus every `*.yml` playbook in `playbookDirectories`
    /// (missing directories are skipped). A playbook that is invalid, or whose
    /// name is taken, fails here with `file:line: message`.
    public static func standard(playbookDirectories: [String]) throws(PlaybookError) -> TaskRegistry {
        var entries = builtIns
        var taken = Dictionary(
            entries.map { ($0.descriptor.name, $0.descriptor.source) }, uniquingKeysWith: { a, _ in a })
        for directory in playbookDirectories {
            for playbook in try PlaybookLoader.loadDirectory(directory) {
                if let other = taken[playbook.name] {
                    throw PlaybookError(
                        .nameTaken(name: playbook.name, by: other),
                        at: SourceLocation(file: playbook.path, line: playbook.nameLine))
                }
                taken[playbook.name] = playbook.path
                entries.append(
                    Entry(
                        descriptor: playbook.descriptor,
                        make: { invocation, _ throws(TaskError) in
                            PlaybookTask(
                                playbook: playbook, invocation: invocation,
                                arguments: try bindArguments(invocation, of: playbook, settings: [:]))
                        }, playbook: playbook))
            }
        }
        let registry = TaskRegistry(entries: entries)
        try registry.validateCalls()
        return registry
    }

    /// Every task, sorted by name (for `--list` and `help:TASK`).
    public var descriptors: [TaskDescriptor] {
        entries.values.map(\.descriptor).sorted { $0.name < $1.name }
    }

    public func descriptor(named name: String) -> TaskDescriptor? {
        entries[name]?.descriptor
    }

    /// A runnable task for `invocation`, its arguments checked: unknown task
    /// (with near names), missing or extra arguments, invalid service names.
    public func makeTask(_ invocation: TaskInvocation, inventory: Inventory) throws(TaskError) -> any FleetTask {
        guard let entry = entries[invocation.name] else {
            let near = NameSuggestions.near(invocation.name, in: entries.keys.sorted(), limit: 3)
            throw TaskError(word: invocation.raw, problem: .unknownTask(name: invocation.name, suggestions: near))
        }
        guard let make = entry.make else {
            throw TaskError(word: invocation.raw, problem: .handledByCommandLine(task: invocation.name))
        }
        return try make(invocation, inventory)
    }

    /// `docs/tasks.md`: generated, and a test checks the file equals it.
    public func markdownReference() -> String {
        var text = """
            # Tasks

            <!-- Generated by TaskRegistry.markdownReference(); a test fails if this file differs. -->

            Every task `govuk-fab --list` shows, with its `help:TASK` text. Tasks run left to right
            on the hosts selected before them (see `docs/inventory.md` for selectors). Changing
            tasks ask for confirmation in environments with `confirm_changes`; read-only ones never
            ask. Playbooks are described in `docs/playbooks.md`.

            As in Fabric 1, any task word may end with its own hosts: `host=NAME`, `hosts=A;B`,
            `exclude_hosts=A;B`, `role=CLASS` or `roles=A;B` (node classes). They set that task's
            hosts only, e.g. `app.status:nginx,hosts=cache-1` or `sdo:'service nginx restart',hosts=cache-2`;
            `\\,` keeps a literal comma. The `fab` options (`-l`, `-H`, `-x`, `-R`, `-u`, `-i`, `-t`, `-T`,
            `-P -z`, `--set`, `-- COMMAND`, …) are in `govuk-fab --help` and `docs/fabric-compat.md`.

            | Task | Changes hosts | Source | Summary |
            |------|---------------|--------|---------|

            """
        for task in descriptors {
            let changes = !task.runsOnHosts ? "no (no hosts)" : (task.changesHosts ? "yes" : "no")
            text += "| `\(task.usage)` | \(changes) | \(task.source) | \(task.summary) |\n"
        }
        for task in descriptors {
            text += "\n## `\(task.usage)`\n\n\(task.summary)\n\n\(task.details)\n"
        }
        return text
    }
}

// MARK: - Argument checks

func noArguments(_ invocation: TaskInvocation, usage: String) throws(TaskError) {
    let extra = invocation.positional + invocation.keywords.map { "\($0.name)=\($0.value)" }
    guard extra.isEmpty else {
        throw TaskError(
            word: invocation.raw, problem: .extraArguments(task: invocation.name, usage: usage, extra: extra))
    }
}

func oneArgument(_ invocation: TaskInvocation, usage: String) throws(TaskError) -> String {
    if let keyword = invocation.keywords.first {
        throw TaskError(
            word: invocation.raw,
            problem: .unknownKeyword(task: invocation.name, keyword: keyword.name, usage: usage))
    }
    guard let first = invocation.positional.first, !first.isEmpty else {
        throw TaskError(word: invocation.raw, problem: .missingArgument(task: invocation.name, usage: usage))
    }
    guard invocation.positional.count == 1 else {
        throw TaskError(
            word: invocation.raw,
            problem: .extraArguments(
                task: invocation.name, usage: usage, extra: Array(invocation.positional.dropFirst())))
    }
    return first
}

// MARK: - Built-ins

/// A task that carries its own descriptor, so its ``FleetTask/changesHosts`` is read from the one
/// place `--list` and `help:TASK` show it.
public protocol DescribedTask: FleetTask {
    /// This task's descriptor (a type behind several names gives the one it was made for).
    var descriptor: TaskDescriptor { get }
}

extension DescribedTask {
    public var changesHosts: Bool { descriptor.changesHosts }
}

/// A built-in task type. The registry lists the types, as ArgumentParser's `subcommands:` lists
/// command types; each type keeps its descriptors and its argument checks with it.
protocol BuiltInTask: DescribedTask {
    /// Every task this type implements: one for most, one per variant for `do`/`sdo`, `app.*`, `data-sync.*`.
    static var descriptors: [TaskDescriptor] { get }
    /// The task for `invocation`, whose name is one of ``descriptors``, its arguments checked.
    static func make(_ invocation: TaskInvocation, inventory: Inventory) throws(TaskError) -> Self
}

extension TaskRegistry {
    /// Every built-in task type.
    static let builtInTypes: [any BuiltInTask.Type] = [
        ShellCommandTask.self, RecoverGoReplayTask.self, CheckGoReplayTask.self, ReplayReportTask.self,
        DataSyncTask.self, ServiceTask.self, DeployGoReplay.self, ShowReplayConfig.self,
    ]

    /// Tasks the command line answers from the inventory, without connecting.
    static let commandLineTasks: [TaskDescriptor] = [
        TaskDescriptor(
            name: "hosts", usage: "hosts", summary: "Print the selected hosts (connects to none).",
            details: "Lists the hosts the selectors before it matched, sorted by name. Runs on no host.",
            changesHosts: false, runsOnHosts: false),
        TaskDescriptor(
            name: "classes", usage: "classes", summary: "List node classes and puppet classes in the inventory.",
            details:
                "Prints every node class (`class:`) and puppet class (`puppet_class:`) with its host count. Runs on no host.",
            changesHosts: false, runsOnHosts: false),
        TaskDescriptor(
            name: "help", usage: "help[:TASK]", summary: "Show a task's help text.",
            details: "`help:TASK` prints TASK's usage and description; `help` alone lists every task. Runs on no host.",
            changesHosts: false, runsOnHosts: false),
    ]

    static var builtIns: [Entry] {
        let typed = builtInTypes.flatMap { type in
            type.descriptors.map { descriptor in
                Entry(
                    descriptor: descriptor,
                    make: { invocation, inventory throws(TaskError) in
                        try type.make(invocation, inventory: inventory)
                    })
            }
        }
        return typed + commandLineTasks.map { Entry(descriptor: $0, make: nil) }
    }
}
