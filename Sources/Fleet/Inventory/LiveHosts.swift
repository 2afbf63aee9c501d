import Foundation
import PuppetDB
import Logging
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
            case .puppetClass(let names): names.forEach { add(HostListQuery(.puppetClass($0))) }
            case .nodeClass(let names): names.forEach { add(HostListQuery(.nodeClass($0))) }
            case .all: add(HostListQuery(.all))
            case .application(let apps):
                apps.forEach { add(HostListQuery(.puppetClass("govuk::apps::" + $0.replacingOccurrences(of: "-", with: "_")))) }
            case .nodeType(let types):
                types.forEach { add(HostListQuery(.puppetClass("govuk::node::s_" + $0))) }
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

    public init(inventory: Inventory, options: SSHClientOptions, cacheDirectory: String, refresh: Bool,
                commandTimeout: Duration = .seconds(30), logger: Logger) {
        self.inventory = inventory
        self.options = options
        self.cacheDirectory = cacheDirectory
        self.refresh = refresh
        self.commandTimeout = commandTimeout
        self.logger = logger
    }

    /// `$XDG_CACHE_HOME/govuk-fab/hosts`, else `~/.cache/govuk-fab/hosts`.
    public static func defaultCacheDirectory(_ environment: [String: String]) -> String {
        let base = environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
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
        let fetch: @Sendable (HostListQuery) async throws -> String
        let parseAnswer: (String, HostListQuery) throws -> [Host]
        switch inventory.source {
        case .file:
            return inventory
        case .gatewayCommand(let command):
            fetch = { query in
                try await runOnGateway(([command] + query.arguments.map(shellQuote)).joined(separator: " "), query: query)
            }
            parseAnswer = { output, query in try parse(output, query: query) }
        case .puppetDB(let source):
            fetch = { query in try await askPuppetDB(source, query) }
            parseAnswer = { output, query in try parsePuppetDB(output, query: query) }
        }
        var hosts: [Host] = []
        var index: [String: Int] = [:]
        for query in queries {
            let output = try await answer(query, fetch: fetch)
            for host in try parseAnswer(output, query) {
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
    func parse(_ output: String, query: HostListQuery) throws(LiveInventoryError) -> [Host] {
        var hosts: [Host] = []
        for (number, raw) in output.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            guard line.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._".contains($0)) }),
                  let label = line.split(separator: ".").first, !label.isEmpty
            else {
                throw LiveInventoryError(
                    source: sourceName,
                    message: "line \(number + 1) of the answer to \(query) is not a host name: '\(line.prefix(80))'")
            }
            var host = Host(name: String(label), address: line)
            switch query.kind {
            case .puppetClass(let name): host.puppetClasses = [name]
            case .nodeClass(let name): host.nodeClass = name
            case .all: break
            }
            if !hosts.contains(where: { $0.name == host.name }) { hosts.append(host) }
        }
        return hosts
    }

    /// The cached answer if fresh, else the command's output (then cached).
    func answer(_ query: HostListQuery, fetch: @Sendable (HostListQuery) async throws -> String) async throws -> String {
        let safeName = (inventory.name + "--" + query.description).map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "_" }
        let cacheFile = cacheDirectory + "/" + String(safeName) + ".txt"
        if !refresh,
           let attributes = try? FileManager.default.attributesOfItem(atPath: cacheFile),
           let modified = attributes[.modificationDate] as? Date,
           Date().timeIntervalSince(modified) < Double(inventory.cacheTTL.components.seconds),
           let cached = try? String(contentsOfFile: cacheFile, encoding: .utf8) {
            logger.debug("live inventory from cache", metadata: ["file": "\(cacheFile)"])
            return cached
        }
        let output = try await fetch(query)
        do {
            try FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
            let temporary = cacheFile + ".\(getpid()).tmp"
            try output.write(toFile: temporary, atomically: false, encoding: .utf8)
            _ = rename(temporary, cacheFile)
        } catch {
            logger.warning("cannot cache the host list in \(cacheFile): \(error)")
        }
        return output
    }

    private func runOnGateway(_ commandLine: String, query: HostListQuery) async throws -> String {
        guard let hop = inventory.ssh.gateway.first else {
            throw LiveInventoryError(source: sourceName, message: "a gateway command needs ssh.gateway (the command runs on its first hop)")
        }
        let user = hop.user ?? inventory.ssh.user ?? ProcessInfo.processInfo.environment["USER"] ?? "root"
        let endpoint = SSHEndpoint(host: hop.host, port: hop.port ?? 22, user: user)
        let reactor = try SSHReactor()
        defer { reactor.shutdown() }
        let session: SSHSession
        do {
            session = try await SSHSession.connect(to: endpoint, options: options, reactor: reactor, logger: logger)
        } catch {
            throw LiveInventoryError(source: sourceName, message: "cannot connect to the gateway to ask for \(query): \(error)")
        }
        let ran: (result: CommandResult, stdout: String, stderr: String)
        do {
            ran = try await session.run(commandLine, timeout: commandTimeout)
        } catch {
            await session.close()
            throw LiveInventoryError(source: sourceName, message: "running '\(commandLine)' on \(endpoint) failed: \(error)")
        }
        await session.close()
        if ran.result.timedOut {
            throw LiveInventoryError(source: sourceName, message: "'\(commandLine)' on \(endpoint) did not finish within \(commandTimeout)")
        }
        guard ran.result.succeeded else {
            let tail = ran.stderr.split(separator: "\n").suffix(3).joined(separator: " / ")
            let how = ran.result.exitSignal.map { "was killed by SIG\($0)" } ?? "exited \(ran.result.exitStatus)"
            throw LiveInventoryError(source: sourceName, message: "'\(commandLine)' on \(endpoint) \(how)\(tail.isEmpty ? "" : ": \(tail)")")
        }
        return ran.stdout
    }

    /// PuppetDB's answer as cached text: one `certname address node_class` line per node.
    private func askPuppetDB(_ source: PuppetDBSource, _ query: HostListQuery) async throws -> String {
        let className: String
        switch query.kind {
        case .puppetClass(let name): className = name
        case .nodeClass, .all:
            throw LiveInventoryError(
                source: sourceName,
                message: "\(query) cannot be asked of PuppetDB here: use puppet_class: (or -H) with a puppetdb source")
        }
        let tls = source.caCertificate.map {
            PuppetDBTLSFiles(caCertificatePath: $0, clientCertificatePath: source.clientCertificate, clientKeyPath: source.clientKey)
        }
        do {
            let client = try PuppetDBClient(baseURL: source.url, tls: tls, timeout: commandTimeout)
            let nodes = try await client.nodes(withClass: className)
            return nodes.map { "\($0.certname) \($0.address) \($0.nodeClass ?? "-")" }.joined(separator: "\n") + "\n"
        } catch {
            throw LiveInventoryError(source: sourceName, message: "asking for \(query): \(error)")
        }
    }

    func parsePuppetDB(_ output: String, query: HostListQuery) throws(LiveInventoryError) -> [Host] {
        var hosts: [Host] = []
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count == 3, let label = fields[0].split(separator: ".").first else {
                throw LiveInventoryError(source: sourceName, message: "cached answer for \(query) is damaged; run with --refresh")
            }
            var host = Host(name: String(label), address: fields[1])
            if fields[2] != "-" { host.nodeClass = fields[2] }
            if case .puppetClass(let name) = query.kind { host.puppetClasses = [name] }
            hosts.append(host)
        }
        return hosts
    }
}
