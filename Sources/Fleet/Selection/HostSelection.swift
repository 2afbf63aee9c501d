import Foundation

/// Hosts chosen by selectors, in command-line order without duplicates.
public struct HostSelection: Sendable, Hashable {
    /// The hosts, first-selected first.
    public var hosts: [FleetHost]
    /// Things worth telling the user that do not stop the run (duplicates, ad-hoc hosts).
    public var warnings: [String]

    /// Creates a selection.
    public init(hosts: [FleetHost] = [], warnings: [String] = []) {
        self.hosts = hosts
        self.warnings = warnings
    }
}

/// Selectors that cannot be satisfied, or a command line that runs nothing sensible.
public struct SelectionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The selector (or word) concerned, as written.
    public var subject: String
    /// What is wrong.
    public var problem: Problem

    /// Creates an error.
    public init(subject: String, problem: Problem) {
        self.subject = subject
        self.problem = problem
    }

    /// Kinds of selection problem.
    public enum Problem: Sendable, Hashable {
        /// A selector value matched no host; suggestions are near selector words (`puppet_class:gor`).
        case noMatch(value: String, environment: String, suggestions: [String])
        /// A `-H` host is neither in the inventory nor a fully qualified name or IP address.
        case unknownHost(String, environment: String, suggestions: [String])
        /// A `-H` value that is not `[user@]host[:port]`.
        case invalidHost(String, reason: String)
        /// An excluded host is not in the inventory (probably a typo, so nothing would be excluded).
        case unknownExclusion(String, suggestions: [String])
        /// Exclusions removed every selected host.
        case everythingExcluded
        /// The command line has selectors but no task.
        case noTasks
        /// A task comes before any selector, so it would run on no hosts.
        case taskWithoutHosts(task: String)
        /// Selectors after the last task select hosts that nothing runs on.
        case selectorAfterLastTask
        /// No task has this name.
        case unknownTask(String, suggestions: [String])
        /// `help:x,hosts=a`: host keywords on a task that runs on no host.
        case hostKeywordsOnHostlessTask(task: String)
    }

    /// Exit code for this error: no-match kinds give ``FleetExitCode/noHostsMatched``, the rest usage.
    public var exitCode: FleetExitCode {
        switch problem {
        case .noMatch, .everythingExcluded: return .noHostsMatched
        default: return .usage
        }
    }

    public var description: String {
        switch problem {
        case .noMatch(let value, let environment, let suggestions):
            return "\(subject): no host in \(environment) matches '\(value)'" + NameSuggestions.hint(suggestions)
        case .unknownHost(let name, let environment, let suggestions):
            return "\(subject): host '\(name)' is not in the \(environment) inventory"
                + NameSuggestions.hint(suggestions)
                + "; give a fully qualified name or an IP address to use a host outside the inventory"
        case .invalidHost(let text, let reason):
            return "\(subject): '\(text)' is not [user@]host[:port]: \(reason)"
        case .unknownExclusion(let name, let suggestions):
            return "\(subject): cannot exclude '\(name)', no such host" + NameSuggestions.hint(suggestions)
        case .everythingExcluded:
            return "\(subject): every selected host is excluded; nothing to do"
        case .noTasks:
            return "\(subject): no task given; add one, e.g. 'hosts' to list the selection"
        case .taskWithoutHosts(let task):
            return "\(subject): task '\(task)' comes before any host selector, so it would run nowhere;"
                + " put selectors (puppet_class:, class:, node_type:, application:, all, -H) first, or give it hosts=NAME;NAME"
        case .selectorAfterLastTask:
            return "\(subject): selector after the last task selects hosts for nothing; move it before the task"
        case .unknownTask(let name, let suggestions):
            return "\(subject): unknown task '\(name)'" + NameSuggestions.hint(suggestions) + "; see govuk-fab --list"
        case .hostKeywordsOnHostlessTask(let task):
            return
                "\(subject): '\(task)' runs on no host, so host=, hosts=, role=, roles= and exclude_hosts= mean nothing here"
        }
    }
}

extension Inventory {
    /// Resolves selectors to hosts: each value must match at least one host; results are
    /// unioned in command-line order, without duplicates; `excluding` names are removed last.
    public func select(_ selectors: [Selector], excluding: [String] = []) throws(SelectionError) -> HostSelection {
        var selection = HostSelection()
        var chosen = Set<String>()
        func add(_ host: FleetHost) {
            if chosen.insert(host.name.lowercased()).inserted { selection.hosts.append(host) }
        }
        for selector in selectors {
            if case .hosts(let names) = selector {
                var given = Set<String>()
                for name in names {
                    if !given.insert(name.lowercased()).inserted {
                        selection.warnings.append("host '\(name)' given more than once with -H; using it once")
                        continue
                    }
                    let (host, warning) = try explicitHost(name, selector: selector)
                    if let warning { selection.warnings.append(warning) }
                    add(host)
                }
                continue
            }
            for value in selector.values {
                let matched = hosts.filter { Inventory.host($0, matches: selector, value: value) }
                guard !matched.isEmpty else {
                    throw SelectionError(
                        subject: selector.description,
                        problem: .noMatch(
                            value: value, environment: name, suggestions: suggestions(for: value, kind: selector)))
                }
                matched.forEach(add)
            }
        }
        guard !excluding.isEmpty else { return selection }
        var excluded = Set<String>()
        for name in excluding {
            guard
                let host = host(named: name)
                    ?? selection.hosts.first(where: { $0.name.lowercased() == name.lowercased() })
            else {
                throw SelectionError(
                    subject: "-x \(name)",
                    problem: .unknownExclusion(
                        name, suggestions: NameSuggestions.near(name, in: hosts.map(\.name), limit: 3)))
            }
            if !chosen.contains(host.name.lowercased()) {
                selection.warnings.append("excluded host '\(host.name)' was not selected anyway")
            }
            excluded.insert(host.name.lowercased())
        }
        selection.hosts.removeAll { excluded.contains($0.name.lowercased()) }
        if selection.hosts.isEmpty, !chosen.isEmpty {
            throw SelectionError(subject: "-x " + excluding.joined(separator: ","), problem: .everythingExcluded)
        }
        return selection
    }

    /// Whether `host` matches one value of a selector (`.hosts` and `.all` ignore `value`).
    static func host(_ host: FleetHost, matches selector: Selector, value: String) -> Bool {
        switch selector {
        case .puppetClass:
            let wanted = normalisedClass(value)
            return host.puppetClasses.contains { normalisedClass($0) == wanted }
        case .nodeClass:
            return dashless(host.nodeClass) == dashless(value)
        case .nodeType:
            if let nodeType = host.nodeType, dashless(nodeType) == dashless(value) { return true }
            let wanted = "govuk::node::s_" + dashless(value)
            return host.puppetClasses.contains { normalisedClass($0) == wanted }
        case .application:
            let wanted = "govuk::apps::" + dashless(value)
            return host.puppetClasses.contains { normalisedClass($0) == wanted }
        case .all:
            return true
        case .hosts(let names):
            return names.contains { $0.lowercased() == host.name.lowercased() || $0 == host.address }
        }
    }

    /// Puppet class titles compare case-insensitively; a leading `::` (top scope) is ignored.
    static func normalisedClass(_ name: String) -> String {
        let lowered = name.lowercased()
        return lowered.hasPrefix("::") ? String(lowered.dropFirst(2)) : lowered
    }

    static func dashless(_ name: String) -> String {
        name.lowercased().replacingOccurrences(of: "-", with: "_")
    }

    /// Resolves one `-H` value to an inventory host or an ad-hoc one.
    func explicitHost(_ text: String, selector: Selector) throws(SelectionError) -> (FleetHost, warning: String?) {
        if let host = host(named: text) { return (host, nil) }
        let hop: GatewayHop
        switch GatewayHop.parse(text) {
        case .success(let parsed): hop = parsed
        case .failure(let error):
            throw SelectionError(subject: selector.description, problem: .invalidHost(text, reason: error.reason))
        }
        if var host = host(named: hop.host) {
            host.user = hop.user ?? host.user
            host.port = hop.port ?? host.port
            return (host, nil)
        }
        guard Inventory.looksQualified(hop.host) else {
            throw SelectionError(
                subject: selector.description,
                problem: .unknownHost(
                    hop.host, environment: name, suggestions: suggestions(for: hop.host, kind: selector)))
        }
        let host = FleetHost(name: hop.host, port: hop.port, nodeClass: "", user: hop.user, isAdHoc: true)
        return (host, "host '\(hop.host)' is not in the \(name) inventory; using the environment's SSH settings")
    }

    /// An IP address or a name with a dot: deliberate, unlike a mistyped short name such as `cache-4`.
    static func looksQualified(_ host: String) -> Bool {
        host.contains(".") || host.contains(":")
    }

    /// Near selector words across classes, node classes, node types, applications and hosts;
    /// suggestions of the same kind as `kind` come first.
    func suggestions(for value: String, kind: Selector) -> [String] {
        // Puppet class titles are case-insensitive; suggest each once, in lower case.
        let puppetClasses = Set(hosts.flatMap(\.puppetClasses).map { Inventory.normalisedClass($0) })
        let applications = puppetClasses.compactMap { name -> String? in
            let lowered = name.lowercased()
            guard lowered.hasPrefix("govuk::apps::") else { return nil }
            return String(lowered.dropFirst("govuk::apps::".count))
        }
        let groups: [(prefix: String, names: [String], isSameKind: Bool)] = [
            ("puppet_class:", puppetClasses.sorted(), { if case .puppetClass = kind { true } else { false } }()),
            (
                "class:", Set(hosts.map(\.nodeClass)).filter { !$0.isEmpty }.sorted(),
                { if case .nodeClass = kind { true } else { false } }()
            ),
            (
                "node_type:", Set(hosts.compactMap(\.nodeType)).sorted(),
                { if case .nodeType = kind { true } else { false } }()
            ),
            ("application:", Set(applications).sorted(), { if case .application = kind { true } else { false } }()),
            ("-H ", hosts.map(\.name), { if case .hosts = kind { true } else { false } }()),
        ]
        var sameKind: [String] = []
        var otherKinds: [String] = []
        for group in groups {
            let near = NameSuggestions.near(value, in: group.names, limit: 3).map { group.prefix + $0 }
            if group.isSameKind { sameKind += near } else { otherKinds += near }
        }
        // Exact matches of another kind are the most useful hint (`class:gor` → `puppet_class:gor`).
        let exactElsewhere = groups.filter { !$0.isSameKind }.flatMap { group in
            group.names.filter { $0.lowercased() == value.lowercased() }.map { group.prefix + $0 }
        }
        var seen = Set<String>()
        return (exactElsewhere + sameKind + otherKinds).filter { seen.insert($0).inserted }.prefix(5).map { $0 }
    }
}

extension Selector {
    /// The values a selector was given (`["all"]` for `all`, so it is checked like the others).
    public var values: [String] {
        switch self {
        case .puppetClass(let values), .nodeClass(let values), .nodeType(let values),
            .application(let values), .hosts(let values):
            return values
        case .all:
            return ["all"]
        }
    }
}
