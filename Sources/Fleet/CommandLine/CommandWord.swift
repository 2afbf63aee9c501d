import Foundation

/// One positional word after the environment: a host selector or a task to run.
public enum CommandWord: Sendable, Hashable {
    /// Adds hosts to the selection (`puppet_class:gor`, `class:cache`, `all`, …).
    case selector(Selector)
    /// Runs a task on the hosts selected so far (`sdo:'rm /x'`, `app.start:goreplay`).
    case task(TaskInvocation)
}

/// A `name=value` argument of a task.
public struct TaskKeyword: Sendable, Hashable {
    /// The keyword (an identifier).
    public var name: String
    /// Its value, escapes removed.
    public var value: String

    /// Creates a keyword argument.
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// A task as written on the command line: `name:a,b,key=value`.
public struct TaskInvocation: Sendable, Hashable, CustomStringConvertible {
    /// Task name, e.g. `app.start`.
    public var name: String
    /// Positional arguments in order, escapes removed.
    public var positional: [String]
    /// Keyword arguments in command-line order (a keyword may repeat; the task decides).
    /// Fabric's per-task host keywords are not here: they are in ``hosts``, ``roles`` and
    /// ``excludeHosts``.
    public var keywords: [TaskKeyword]
    /// `host=NAME` / `hosts=A;B`: this task's own hosts, replacing the hosts selected before it.
    public var hosts: [String]
    /// `role=NAME` / `roles=A;B`: this task's own node classes, added to ``hosts``.
    public var roles: [String]
    /// `exclude_hosts=A;B`: hosts this task leaves out.
    public var excludeHosts: [String]
    /// The word exactly as given.
    public var raw: String

    /// Creates an invocation.
    public init(
        name: String, positional: [String] = [], keywords: [TaskKeyword] = [], hosts: [String] = [],
        roles: [String] = [], excludeHosts: [String] = [], raw: String? = nil
    ) {
        self.name = name
        self.positional = positional
        self.keywords = keywords
        self.hosts = hosts
        self.roles = roles
        self.excludeHosts = excludeHosts
        self.raw = raw ?? name
    }

    /// Whether the task names its own hosts or roles (Fabric: they then replace `-H`, `-R` and
    /// the selectors before it for this task only).
    public var hasOwnHosts: Bool { !hosts.isEmpty || !roles.isEmpty }

    /// The last value given for `keyword`, if any.
    public func keyword(_ keyword: String) -> String? {
        keywords.last { $0.name == keyword }?.value
    }

    public var description: String { raw }
}

/// A host selector, as written on the command line or given with `-H`.
public enum Selector: Sendable, Hashable, CustomStringConvertible {
    /// `puppet_class:NAME[,NAME]`: hosts declaring one of these puppet classes (exact title, any case).
    case puppetClass([String])
    /// `class:NAME[,NAME]`: hosts of these node classes (`-` and `_` are the same).
    case nodeClass([String])
    /// `node_type:NAME[,NAME]`: hosts with this node type, or puppet class `govuk::node::s_NAME`.
    case nodeType([String])
    /// `application:APP[,APP]`: hosts with puppet class `govuk::apps::APP` (`-` read as `_`).
    case application([String])
    /// `all`: every host in the inventory.
    case all
    /// `-H h1,h2`: hosts by name or address; unknown names that look like host names are used ad hoc.
    case hosts([String])

    /// The command-line spelling, e.g. `puppet_class:gor` or `-H cache-1,cache-2`.
    public var description: String {
        switch self {
        case .puppetClass(let names): return "puppet_class:" + names.joined(separator: ",")
        case .nodeClass(let names): return "class:" + names.joined(separator: ",")
        case .nodeType(let names): return "node_type:" + names.joined(separator: ",")
        case .application(let names): return "application:" + names.joined(separator: ",")
        case .all: return "all"
        case .hosts(let names): return "-H " + names.joined(separator: ",")
        }
    }

    /// The selector for `-H` values, each of which may hold comma-separated hosts.
    public static func explicitHosts(_ optionValues: [String]) -> Selector {
        .hosts(
            optionValues.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
                .filter { !$0.isEmpty })
    }
}
