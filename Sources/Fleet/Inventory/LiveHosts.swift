import Foundation
import Logging
import PuppetDB
import SSHTransport

/// One question to a live inventory source, from one selector value.
public struct HostListQuery: Sendable, Hashable, CustomStringConvertible {
    /// What the question selects.
    public enum Kind: Sendable, Hashable {
        /// Every host (`all`).
        case all
        /// Hosts declaring a puppet class (`puppet_class:NAME`).
        case puppetClass(String)
        /// Hosts of a node class (`class:NAME`).
        case nodeClass(String)
    }

    public var kind: Kind

    public init(_ kind: Kind) { self.kind = kind }

    /// The arguments `govuk_node_list` takes for it.
    public var arguments: [String] {
        switch kind {
        case .all: []
        case .puppetClass(let name): ["-C", name]
        case .nodeClass(let name): ["-c", name]
        }
    }

    public var description: String {
        switch kind {
        case .all: "all"
        case .puppetClass(let name): "puppet_class:\(name)"
        case .nodeClass(let name): "class:\(name)"
        }
    }

    /// The questions a command line's selectors need answered. As fabric-scripts did,
    /// `application:APP` asks for puppet class `govuk::apps::APP` and `node_type:NAME` for
    /// `govuk::node::s_NAME`.
    public static func queries(for words: [CommandWord]) -> [HostListQuery] {
        var queries: [HostListQuery] = []
        func add(_ query: HostListQuery) { if !queries.contains(query) { queries.append(query) } }
        for case .selector(let selector) in words {
            switch selector {
            case .puppetClass(let names):
                for name in names { add(HostListQuery(.puppetClass(name))) }
            case .nodeClass(let names):
                for name in names { add(HostListQuery(.nodeClass(name))) }
            case .all: add(HostListQuery(.all))
            case .application(let apps):
                for app in apps {
                    add(HostListQuery(.puppetClass("govuk::apps::" + app.replacingOccurrences(of: "-", with: "_"))))
                }
            case .nodeType(let types):
                for type in types { add(HostListQuery(.puppetClass("govuk::node::s_" + type))) }
            case .hosts: break
            }
        }
        return queries
    }
}

/// A live inventory source that failed: never an empty host list in disguise.
public struct LiveInventoryError: Error, Sendable, CustomStringConvertible {
    /// The environment and the source, e.g. `production (gateway command govuk_node_list)`.
    public var source: String
    /// What went wrong and what to do.
    public var message: String

    public var description: String { "live inventory \(source): \(message)" }
}

/// Fills an inventory's hosts from its live source for the selectors of one run, with a file cache.
public struct LiveHostLister: Sendable {
    public var inventory: Inventory
    /// Connection settings for the gateway the command runs on.
    public var options: SSHClientOptions
    /// Where answers are cached, e.g. `~/.cache/govuk-fab/hosts`.
    public var cacheDirectory: String
    /// Ignore cached answers (`--refresh`).
    public var refresh: Bool
    /// Limit for running the command on the gateway.
    public var commandTimeout: Duration
    public var logger: Logger
    /// Told, before each query of the live source (not for a cached answer), what is about to be
    /// asked of whom: `--dry-run` says it on stderr, since a dry run otherwise contacts nothing.
    public var willQuerySource: (@Sendable (String) -> Void)?

    /// The gateway login when neither the hop nor the inventory names a user (``LocalEnvironment/user``).
    public var localUser: String

    public init(
        inventory: Inventory, options: SSHClientOptions, cacheDirectory: String, refresh: Bool,
        commandTimeout: Duration = .seconds(30), logger: Logger, localUser: String = LocalEnvironment.current().user
    ) {
        self.inventory = inventory
        self.localUser = localUser
        self.options = options
        self.cacheDirectory = cacheDirectory
        self.refresh = refresh
        self.commandTimeout = commandTimeout
        self.logger = logger
    }

    /// `$XDG_CACHE_HOME/govuk-fab/hosts`, else `~/.cache/govuk-fab/hosts`.
    public static func defaultCacheDirectory(_ environment: [String: String]) -> String {
        let base =
            environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (environment["HOME"] ?? NSHomeDirectory()) + "/.cache"
        return base + "/govuk-fab/hosts"
    }

    private var sourceName: String {
        switch inventory.source {
        case .file: "\(inventory.name) (file)"
        case .gatewayCommand(let command): "\(inventory.name) (gateway command \(command))"
        case .puppetDB(let source): "\(inventory.name) (PuppetDB \(source.url))"
        }
    }

    /// The inventory with its hosts from the source: each query's hosts, with the puppet class or node
    /// class that selected them, so the selectors then match exactly those.
    public func resolve(_ queries: [HostListQuery]) async throws -> Inventory {
        let fetch: @Sendable (HostListQuery) async throws -> [HostListAnswer.Entry]
        switch inventory.source {
        case .file:
            return inventory
        case .gatewayCommand(let command):
            fetch = { query in
                let commandLine = ([command] + query.arguments.map(shellQuote)).joined(separator: " ")
                return try parse(try await runOnGateway(commandLine, query: query), query: query)
            }
        case .puppetDB(let source):
            if source.url.lowercased().hasPrefix("http://") {
                logger.warning(
                    "PuppetDB at \(source.url) is plain HTTP: its answers could be altered in transit; use https:// with ca_certificate"
                )
            }
            fetch = { query in try await askPuppetDB(source, query) }
        }
        var hosts: [FleetHost] = []
        var index: [String: Int] = [:]
        for query in queries {
            for entry in try await answer(query, fetch: fetch) {
                var host = FleetHost(name: entry.name, address: entry.address)
                switch query.kind {
                case .puppetClass(let name): host.puppetClasses = [name]
                case .nodeClass(let name): host.nodeClass = name
                case .all: break
                }
                if let nodeClass = entry.nodeClass { host.nodeClass = nodeClass }
                if let at = index[host.name] {
                    hosts[at].puppetClasses += host.puppetClasses.filter { !hosts[at].puppetClasses.contains($0) }
                    if case .nodeClass = query.kind { hosts[at].nodeClass = host.nodeClass }
                } else {
                    index[host.name] = hosts.count
                    hosts.append(host)
                }
            }
        }
        var resolved = inventory
        resolved.hosts = hosts
        return resolved
    }

    /// One line per host: the first DNS label is the name (as fabric-scripts kept it), the line the address.
    func parse(_ output: String, query: HostListQuery) throws(LiveInventoryError) -> [HostListAnswer.Entry] {
        var entries: [HostListAnswer.Entry] = []
        for (number, raw) in output.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            guard HostNameRules.isHostName(line), let label = line.split(separator: ".").first, !label.isEmpty else {
                throw LiveInventoryError(
                    source: sourceName,
                    message: "line \(number + 1) of the answer to \(query) is not a host name: '\(line.prefix(80))'")
            }
            if !entries.contains(where: { $0.name == label }) {
                entries.append(HostListAnswer.Entry(name: String(label), address: line))
            }
        }
        return entries
    }

    /// The cached answer if fresh, else the source's (then cached). Cached entries are checked
    /// again: the cache directory is the user's, but a file in it is still input.
    func answer(
        _ query: HostListQuery, fetch: @Sendable (HostListQuery) async throws -> [HostListAnswer.Entry]
    ) async throws -> [HostListAnswer.Entry] {
        let cache = HostListCache(directory: cacheDirectory)
        let key = "\(sourceName) \(query)"
        if !refresh, let cached = cache.read(key: key, ttl: inventory.cacheTTL, now: Date()),
            cached.hosts.allSatisfy(Self.isValid)
        {
            logger.debug("live inventory from cache", metadata: ["file": "\(cache.path(for: key))"])
            return cached.hosts
        }
        willQuerySource?(sourceQueryDescription(query))
        let entries = try await fetch(query)
        do {
            try cache.write(HostListAnswer(key: key, fetched: Date(), hosts: entries))
        } catch {
            logger.warning("cannot cache the host list in \(cacheDirectory): \(error)")
        }
        return entries
    }

    /// What asking the source for `query` does, in an operator's words.
    func sourceQueryDescription(_ query: HostListQuery) -> String {
        switch inventory.source {
        case .file:
            return "reading \(inventory.name)'s hosts from its file"
        case .gatewayCommand(let command):
            let commandLine = ([command] + query.arguments.map(shellQuote)).joined(separator: " ")
            let gateway = inventory.ssh.gateway.first.map { "\($0.host)" } ?? "the gateway"
            return "running `\(commandLine)` on \(gateway) to list the hosts for \(query)"
        case .puppetDB(let source):
            return "asking PuppetDB at \(source.url) for the hosts of \(query) (a read-only query)"
        }
    }

    static func isValid(_ entry: HostListAnswer.Entry) -> Bool {
        HostNameRules.isHostName(entry.name) && !entry.name.contains(".") && HostNameRules.isAddress(entry.address)
            && (entry.nodeClass.map(HostNameRules.isNodeClass) ?? true)
    }

    private func runOnGateway(_ commandLine: String, query: HostListQuery) async throws -> String {
        guard let hop = inventory.ssh.gateway.first else {
            throw LiveInventoryError(
                source: sourceName, message: "a gateway command needs ssh.gateway (the command runs on its first hop)")
        }
        let user = hop.user ?? inventory.ssh.user ?? localUser
        let endpoint = SSHEndpoint(host: hop.host, port: hop.port ?? 22, user: user)
        let reactor = try SSHReactor()
        defer { reactor.shutdown() }
        let session: SSHSession
        do {
            session = try await SSHSession.connect(to: endpoint, options: options, reactor: reactor, logger: logger)
        } catch {
            throw LiveInventoryError(
                source: sourceName, message: "cannot connect to the gateway to ask for \(query): \(error)")
        }
        let ran: (result: CommandResult, stdout: String, stderr: String)
        do {
            ran = try await session.run(commandLine, timeout: commandTimeout)
        } catch {
            await session.close()
            throw LiveInventoryError(
                source: sourceName, message: "running '\(commandLine)' on \(endpoint) failed: \(error)")
        }
        await session.close()
        if ran.result.timedOut {
            throw LiveInventoryError(
                source: sourceName, message: "'\(commandLine)' on \(endpoint) did not finish within \(commandTimeout)")
        }
        guard ran.result.succeeded else {
            let tail = ran.stderr.split(separator: "\n").suffix(3).joined(separator: " / ")
            let how = ran.result.exitSignal.map { "was killed by SIG\($0)" } ?? "exited \(ran.result.exitStatus)"
            throw LiveInventoryError(
                source: sourceName, message: "'\(commandLine)' on \(endpoint) \(how)\(tail.isEmpty ? "" : ": \(tail)")")
        }
        return ran.stdout
    }

    /// PuppetDB's nodes for a puppet class. Facts come from the nodes themselves, so a node whose
    /// certname, address or node class breaks the host-name rules is left out, with a warning.
    private func askPuppetDB(_ source: PuppetDBSource, _ query: HostListQuery) async throws -> [HostListAnswer.Entry] {
        let className: String
        switch query.kind {
        case .puppetClass(let name): className = name
        case .nodeClass, .all:
            throw LiveInventoryError(
                source: sourceName,
                message: "\(query) cannot be asked of PuppetDB here: use puppet_class: (or -H) with a puppetdb source")
        }
        let tls = source.caCertificate.map {
            PuppetDBTLSFiles(
                caCertificatePath: $0, clientCertificatePath: source.clientCertificate, clientKeyPath: source.clientKey)
        }
        let nodes: [PuppetDBNode]
        do {
            let client = try PuppetDBClient(baseURL: source.url, tls: tls, timeout: commandTimeout)
            nodes = try await client.nodes(withClass: className)
        } catch {
            throw LiveInventoryError(source: sourceName, message: "asking for \(query): \(error)")
        }
        var entries: [HostListAnswer.Entry] = []
        for node in nodes {
            let entry = HostListAnswer.Entry(name: node.shortName, address: node.address, nodeClass: node.nodeClass)
            guard HostNameRules.isHostName(node.certname), Self.isValid(entry) else {
                logger.warning(
                    "PuppetDB node \(node.certname.debugDescription.prefix(80)) left out: its certname or facts (address \(node.address.debugDescription.prefix(80)), node class \((node.nodeClass ?? "-").debugDescription.prefix(40))) are not a host name"
                )
                continue
            }
            if !entries.contains(where: { $0.name == entry.name }) { entries.append(entry) }
        }
        return entries
    }
}
