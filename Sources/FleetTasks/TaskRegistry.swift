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

    public init(name: String, usage: String, summary: String, details: String, changesHosts: Bool,
                source: String = "built-in", runsOnHosts: Bool = true) {
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
        var taken = Dictionary(entries.map { ($0.descriptor.name, $0.descriptor.source) }, uniquingKeysWith: { a, _ in a })
        for directory in playbookDirectories {
            for playbook in try PlaybookLoader.loadDirectory(directory) {
                if let other = taken[playbook.name] {
                    throw PlaybookError(.nameTaken(name: playbook.name, by: other),
                                        at: SourceLocation(file: playbook.path, line: playbook.nameLine))
                }
                taken[playbook.name] = playbook.path
                entries.append(Entry(descriptor: playbook.descriptor, make: { invocation, _ throws(TaskError) in
                    PlaybookTask(playbook: playbook, invocation: invocation,
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
        throw TaskError(word: invocation.raw, problem: .extraArguments(task: invocation.name, usage: usage, extra: extra))
    }
}

func oneArgument(_ invocation: TaskInvocation, usage: String) throws(TaskError) -> String {
    if let keyword = invocation.keywords.first {
        throw TaskError(word: invocation.raw,
                        problem: .unknownKeyword(task: invocation.name, keyword: keyword.name, usage: usage))
    }
    guard let first = invocation.positional.first, !first.isEmpty else {
        throw TaskError(word: invocation.raw, problem: .missingArgument(task: invocation.name, usage: usage))
    }
    guard invocation.positional.count == 1 else {
        throw TaskError(word: invocation.raw, problem: .extraArguments(
            task: invocation.name, usage: usage, extra: Array(invocation.positional.dropFirst())))
    }
    return first
}

// MARK: - Built-ins

extension TaskRegistry {
    static var builtIns: [Entry] {
        var list: [Entry] = [
            Entry(descriptor: TaskDescriptor(
                name: "do", usage: "do:COMMAND", summary: "Run a shell command as the SSH user.",
                details: """
                    Runs COMMAND exactly as written with the remote login shell. Quote it once for your
                    local shell: `do:'uptime'`. A comma needs no escaping (`\\,` also works, as in Fabric).
                    `--dry-run` prints the exact remote command.
                    """, changesHosts: true)
            ) { invocation, _ throws(TaskError) in
                ShellCommandTask(invocation: invocation, command: try oneArgument(invocation, usage: "do:COMMAND"), sudo: false)
            },
            Entry(descriptor: TaskDescriptor(
                name: "sdo", usage: "sdo:COMMAND", summary: "Run a shell command through sudo, never prompting.",
                details: """
                    Runs COMMAND as root through `sudo -n -- /bin/sh -c 'COMMAND'` (quoted exactly once;
                    as root, sudo is skipped). `-n` means sudo never asks for a password: a host where
                    it would fails alone with a message saying so, instead of hanging the run.
                    """, changesHosts: true)
            ) { invocation, _ throws(TaskError) in
                ShellCommandTask(invocation: invocation, command: try oneArgument(invocation, usage: "sdo:COMMAND"), sudo: true)
            },
            Entry(descriptor: TaskDescriptor(
                name: "recover-goreplay", usage: "recover-goreplay",
                summary: "Make GoReplay healthy after a failed data sync: empty marker, service running.",
                details: """
                    The runbook's recovery as one idempotent task. Refuses inside the data-sync window
                    (inventory `data_sync.window`) unless `--force`. Per host it reads the marker
                    (`data_sync.marker`), the GoReplay service (first of the `goreplay` aliases defined
                    on the host, e.g. `goreplay` or the legacy upstart job `gor`) and the number of
                    `goreplay` processes; then, only where needed, leaves the marker present and empty
                    (atomic write, owner and mode kept; a missing marker is created with the directory's
                    owner and mode 0644), starts the service (restarts it if it runs no `goreplay`
                    process) and waits up to 20 s for a process. Reports per host what it found and did;
                    a second run reports "healthy, nothing to do". `--dry-run` reads state and prints
                    the plan without changing anything. Privileged steps use `sudo -n`.
                    """, changesHosts: true)
            ) { invocation, _ throws(TaskError) in
                try noArguments(invocation, usage: "recover-goreplay")
                return RecoverGoReplayTask(invocation: invocation)
            },
            Entry(descriptor: TaskDescriptor(
                name: "check-goreplay", usage: "check-goreplay[:metrics=PORT,interval=SECONDS]",
                summary: "Icinga's GoReplay check: check_procs -c 1: -C goreplay on each host.",
                details: """
                    Prints per host the line `check_procs -c 1: -C goreplay` prints, e.g.
                    `PROCS OK: 1 process with command name 'goreplay' | procs=1;;1:;0;`, counting
                    processes by command name as the plugin does. Exit status is the worst host's:
                    0 OK, 2 CRITICAL, 3 UNKNOWN (unreachable host). Inside the data-sync window every
                    host is OK with "data sync in progress" and no host is contacted (Icinga does not
                    run the check then); `--force` checks anyway. Read-only.
                    With `metrics=PORT` (goreplay run with `--metrics 127.0.0.1:PORT`) a running
                    goreplay's `/metrics` is also read twice, `interval` seconds apart (default 10):
                    requests captured but none replayed in between, or no metrics, is WARNING (1).
                    """, changesHosts: false)
            ) { invocation, _ throws(TaskError) in
                try CheckGoReplayTask.parse(invocation)
            },
            Entry(descriptor: TaskDescriptor(
                name: "replay-report", usage: ReplayReportTask.usage,
                summary: "One goreplay report for the fleet: every host's .gor files fetched over SFTP, compared locally.",
                details: """
                    Fetches from each host the `.gor` files its goreplay writes (by default the
                    `--output-file` deploy-goreplay configures for it, as a glob: `%Y`… and chunk numbers
                    match anything; `path=GLOB[;GLOB]` overrides), and reports what the replay target did
                    with the recorded requests, as `goreplay report` does: status pairs, endpoints, latency,
                    missing replies. One report for all hosts, printed at the end; `html=FILE` and
                    `json=FILE` also write it locally (mode 0600). Files are listed and copied through
                    `sudo -n` into a private `mktemp -d` directory in /var/tmp, downloaded over SFTP and
                    removed (also on failure or Ctrl-C). `max_size` (default 4gb) bounds what one host
                    sends. A host with no file, a file too large or unreadable as `.gor` fails alone with
                    the cause; the report is built from the other hosts and names the missing ones.
                    Read-only.
                    """, changesHosts: false)
            ) { invocation, _ throws(TaskError) in
                try ReplayReportTask.parse(invocation)
            },
            Entry(descriptor: TaskDescriptor(
                name: "data-sync.start", usage: "data-sync.start",
                summary: "Do what the nightly data-sync start did: marker 'true', GoReplay stopped.",
                details: """
                    Writes `true` to the marker (atomically, owner and mode kept), stops the GoReplay
                    service under whatever name the host uses, and waits up to 20 s until no `goreplay`
                    process runs. For reproducing a data sync; `data-sync.finish` or `recover-goreplay`
                    undo it.
                    """, changesHosts: true)
            ) { invocation, _ throws(TaskError) in
                try noArguments(invocation, usage: "data-sync.start")
                return DataSyncTask(phase: .start, invocation: invocation)
            },
            Entry(descriptor: TaskDescriptor(
                name: "data-sync.finish", usage: "data-sync.finish",
                summary: "Do what the nightly data-sync finish did: marker empty, GoReplay started.",
                details: """
                    Empties the marker (atomically, owner and mode kept), starts the GoReplay service
                    under whatever name the host uses, and waits up to 20 s for a `goreplay` process.
                    Refuses inside the data-sync window unless `--force`.
                    """, changesHosts: true)
            ) { invocation, _ throws(TaskError) in
                try noArguments(invocation, usage: "data-sync.finish")
                return DataSyncTask(phase: .finish, invocation: invocation)
            },
            Entry(descriptor: TaskDescriptor(
                name: "hosts", usage: "hosts", summary: "Print the selected hosts (connects to none).",
                details: "Lists the hosts the selectors before it matched, sorted by name. Runs on no host.",
                changesHosts: false, runsOnHosts: false), make: nil),
            Entry(descriptor: TaskDescriptor(
                name: "classes", usage: "classes", summary: "List node classes and puppet classes in the inventory.",
                details: "Prints every node class (`class:`) and puppet class (`puppet_class:`) with its host count. Runs on no host.",
                changesHosts: false, runsOnHosts: false), make: nil),
            Entry(descriptor: TaskDescriptor(
                name: "help", usage: "help[:TASK]", summary: "Show a task's help text.",
                details: "`help:TASK` prints TASK's usage and description; `help` alone lists every task. Runs on no host.",
                changesHosts: false, runsOnHosts: false), make: nil),
        ]
        for action in ServiceAction.allCases {
            let name = "app.\(action.rawValue)"
            let usage = "\(name):NAME"
            let summary: String
            switch action {
            case .start: summary = "Start a service (starting a running one succeeds)."
            case .stop: summary = "Stop a service (stopping a stopped one succeeds)."
            case .restart: summary = "Restart a service."
            case .reload: summary = "Reload a service's configuration."
            case .status: summary = "Show whether a service is running (read-only)."
            }
            list.append(Entry(descriptor: TaskDescriptor(
                name: name, usage: usage, summary: summary,
                details: """
                    Runs `\(action.rawValue)` through each host's service manager (systemd, upstart,
                    SysV `service`, or govuk-fab's supervisor mode). NAME must be letters, digits and
                    `_ . @ -`; it is resolved through the inventory's `services.aliases`, and on each
                    host the first candidate defined there is used (`app.start:goreplay` starts the
                    legacy upstart job `gor` where that is what exists). A host with none fails alone
                    with exit status 5.\(action == .status ? " A stopped service is reported, not a failure." : "")
                    """, changesHosts: action.changesHosts)
            ) { invocation, inventory throws(TaskError) in
                let logical = try oneArgument(invocation, usage: usage)
                do throws(ServiceNameError) {
                    _ = try ServiceName(validating: logical)
                    return ServiceTask(invocation: invocation, action: action,
                                       candidates: try serviceCandidates(logical, in: inventory))
                } catch {
                    throw TaskError(word: invocation.raw, problem: .invalidServiceName(error))
                }
            })
        }
        list += deployEntries
        return list
    }
}
