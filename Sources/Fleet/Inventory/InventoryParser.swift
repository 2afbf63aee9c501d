import Foundation
import Yams

/// An inventory file's YAML, read with located ``InventoryError``s.
typealias InventoryTree = YAMLTree<InventoryError>

/// Parses inventory YAML into an ``Inventory``; see `docs/inventory.md` for the schema.
public enum InventoryParser {
    /// Keys allowed at the top of an inventory file.
    public static let environmentKeys = [
        "name", "ssh", "parallelism", "confirm_changes", "data_sync", "services", "replay",
        "hosts", "include_hosts", "source", "cache_ttl",
    ]
    /// Keys allowed under `ssh`.
    public static let sshKeys = [
        "user", "port", "identity_files", "known_hosts", "gateway", "connect_timeout", "command_timeout",
        "keepalive_interval", "keepalive_count_max",
    ]
    /// Keys allowed in each host.
    public static let hostKeys = [
        "name", "address", "port", "puppet_classes", "node_class", "node_type", "service_manager", "user",
    ]

    /// Parses `text`, read from `file`.
    ///
    /// - Parameters:
    ///   - defaultName: environment name if the file has no `name` (usually the file's base name).
    ///   - readInclude: reads an `include_hosts` file given its resolved path; the default reads the disk.
    public static func parse(
        _ text: String, file: String, defaultName: String,
        readInclude: (String) throws(InventoryError) -> String = InventoryParser.readFile
    ) throws(InventoryError) -> Inventory {
        let root = try compose(text, file: file)
        let top = try root.mapping(context: "the environment", allowedKeys: environmentKeys)
        let baseDirectory = (file as NSString).deletingLastPathComponent

        var inventory = Inventory(name: try top["name"]?.nonEmptyString() ?? defaultName, sourcePath: file)
        if let ssh = top["ssh"] { inventory.ssh = try parseSSH(ssh, baseDirectory: baseDirectory) }
        if let value = top["parallelism"] { inventory.parallelism = try value.int(in: 1...1000) }
        if let value = top["confirm_changes"] { inventory.confirmChanges = try value.bool() }
        if let value = top["data_sync"] { inventory.dataSync = try parseDataSync(value) }
        if let value = top["services"] { inventory.services = try parseServices(value) }
        if let value = top["replay"] { inventory.replay = try parseReplay(value) }
        if let value = top["source"] { inventory.source = try parseSource(value) }
        if let value = top["cache_ttl"] { inventory.cacheTTL = try value.duration() }

        var located: [(host: FleetHost, location: SourceLocation)] = []
        if let hosts = top["hosts"] {
            located += try parseHosts(hosts)
        }
        if let include = top["include_hosts"] {
            let relative = try include.nonEmptyString()
            let path = resolve(relative, against: baseDirectory)
            let includedText = try readInclude(path)
            let includedRoot = try compose(includedText, file: path)
            let included = try includedRoot.mapping(context: "an include_hosts file", allowedKeys: ["hosts"])
            located += try parseHosts(try included.required("hosts"))
        }
        guard top.entries["hosts"] != nil || top.entries["include_hosts"] != nil || inventory.source != .file else {
            throw root.error(.missingKey(key: "hosts", in: "the environment"))
        }
        try checkUnique(located, defaultPort: inventory.ssh.port)
        inventory.hosts = located.map(\.host)
        return inventory
    }

    /// Reads a file as UTF-8, failing with an ``InventoryError`` located at the file.
    public static func readFile(_ path: String) throws(InventoryError) -> String {
        if let problem = ConfigurationFileTrust.problem(with: path) {
            throw InventoryError(.unreadable(reason: problem), at: SourceLocation(file: path))
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason =
                FileManager.default.fileExists(atPath: path)
                ? "permission denied or not a regular file" : "no such file"
            throw InventoryError(.unreadable(reason: reason), at: SourceLocation(file: path))
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw InventoryError(.unreadable(reason: "not valid UTF-8"), at: SourceLocation(file: path))
        }
        return text
    }

    // MARK: - Sections

    static func compose(_ text: String, file: String) throws(InventoryError) -> InventoryTree {
        if let deep = YAMLNestingLimit.firstViolation(in: text) {
            throw InventoryError(
                .syntax(
                    "nested more than \(YAMLNestingLimit.maximumDepth) levels deep; no inventory needs that, so the file is refused unread"
                ),
                at: SourceLocation(file: file, line: deep.line, column: deep.column))
        }
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw syntaxError(error, file: file)
        } catch {
            throw InventoryError(.syntax(String(describing: error)), at: SourceLocation(file: file))
        }
        guard let node else {
            throw InventoryError(.syntax("the file is empty"), at: SourceLocation(file: file, line: 1, column: 1))
        }
        return InventoryTree(node: node, path: "", file: file)
    }

    static func syntaxError(_ error: YamlError, file: String) -> InventoryError {
        switch error {
        case .scanner(let context, let problem, let mark, _),
            .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let text = context.map { "\(problem) (\($0.text))" } ?? problem
            return InventoryError(.syntax(text), at: SourceLocation(file: file, line: mark.line, column: mark.column))
        case .reader(let problem, _, _, _):
            return InventoryError(.syntax(problem), at: SourceLocation(file: file))
        default:
            return InventoryError(.syntax(String(describing: error)), at: SourceLocation(file: file))
        }
    }

    /// `static`, or `{gateway_command: CMD}`.
    static func parseSource(_ tree: InventoryTree) throws(InventoryError) -> InventorySource {
        if case .scalar = tree.node {
            let text = try tree.nonEmptyString()
            guard text == "static" else {
                throw tree.error(
                    .invalidValue(
                        path: tree.path, value: text,
                        reason: "expected 'static', {gateway_command: CMD} or {puppetdb: {url: URL}}"))
            }
            return .file
        }
        let map = try tree.mapping(context: "source", allowedKeys: ["gateway_command", "puppetdb"])
        if let puppetdb = map["puppetdb"] {
            let settings = try puppetdb.mapping(context: "source.puppetdb", allowedKeys: ["url", "ca", "cert", "key"])
            let urlTree = try settings.required("url")
            let url = try urlTree.nonEmptyString()
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                throw urlTree.invalid(url, "expected an http:// or https:// URL")
            }
            return .puppetDB(
                PuppetDBSource(
                    url: url, caCertificate: try settings["ca"]?.nonEmptyString(),
                    clientCertificate: try settings["cert"]?.nonEmptyString(),
                    clientKey: try settings["key"]?.nonEmptyString()))
        }
        return .gatewayCommand(try map.required("gateway_command").nonEmptyString())
    }

    static func parseSSH(_ tree: InventoryTree, baseDirectory: String) throws(InventoryError) -> SSHSettings {
        let map = try tree.mapping(context: "ssh", allowedKeys: sshKeys)
        var ssh = SSHSettings()
        ssh.user = try map["user"]?.nonEmptyString()
        if let value = map["port"] { ssh.port = try value.int(in: 1...65535) }
        if let value = map["identity_files"] {
            ssh.identityFiles = try value.stringList().map { resolve($0, against: baseDirectory) }
        }
        if let value = map["known_hosts"] {
            ssh.knownHosts = try value.stringList().map { resolve($0, against: baseDirectory) }
        }
        if let value = map["gateway"] { ssh.gateway = try parseGateway(value) }
        if let value = map["connect_timeout"] { ssh.connectTimeout = try value.duration() }
        if let value = map["command_timeout"] { ssh.commandTimeout = try value.duration() }
        if let value = map["keepalive_interval"] { ssh.keepaliveInterval = try value.duration() }
        if let value = map["keepalive_count_max"] { ssh.keepaliveCountMax = try value.int(in: 1...100) }
        ssh.explicitKeys = Set(sshKeys.filter { map[$0] != nil })
        return ssh
    }

    static func parseGateway(_ tree: InventoryTree) throws(InventoryError) -> [GatewayHop] {
        let items: [InventoryTree]
        if case .sequence = tree.node { items = try tree.list() } else { items = [tree] }
        var hops: [GatewayHop] = []
        for item in items {
            let text = try item.nonEmptyString()
            switch GatewayHop.parse(text) {
            case .success(let hop): hops.append(hop)
            case .failure(let error): throw item.invalid(text, error.reason + "; expected [user@]host[:port]")
            }
        }
        return hops
    }

    static func parseDataSync(_ tree: InventoryTree) throws(InventoryError) -> DataSyncSettings {
        let map = try tree.mapping(context: "data_sync", allowedKeys: ["window", "marker"])
        var settings = DataSyncSettings()
        if let window = map["window"] {
            let parts = try window.mapping(context: "data_sync.window", allowedKeys: ["start", "end", "time_zone"])
            let start = try parts.required("start")
            let end = try parts.required("end")
            let zone = try parts.required("time_zone")
            let startText = try start.string()
            let endText = try end.string()
            let zoneText = try zone.string()
            do {
                settings.window = try DataSyncWindow(start: startText, end: endText, timeZone: zoneText)
            } catch {
                switch error {
                case .invalidTime(let text):
                    throw (text == startText ? start : end).invalid(text, error.description)
                case .unknownTimeZone:
                    throw zone.invalid(zoneText, error.description)
                case .emptyWindow:
                    throw end.invalid(endText, error.description)
                }
            }
        }
        if let marker = map["marker"] { settings.marker = try absolutePath(marker) }
        return settings
    }

    static func parseServices(_ tree: InventoryTree) throws(InventoryError) -> ServiceSettings {
        let map = try tree.mapping(context: "services", allowedKeys: ["manager", "aliases"])
        var settings = ServiceSettings()
        if let manager = map["manager"] { settings.manager = try serviceManager(manager) }
        if let aliases = map["aliases"] {
            guard case .mapping(let mapping) = aliases.node else { throw aliases.wrongType("a mapping") }
            let names = Array(mapping.keys.compactMap(\.string))
            let entries = try aliases.mapping(context: "services.aliases", allowedKeys: names)
            for key in entries.order {
                let list = try entries.required(key)
                let candidates = try list.stringList()
                guard !candidates.isEmpty else { throw list.invalid("[]", "list at least one service name") }
                settings.aliases[key] = candidates
            }
        }
        return settings
    }

    static func serviceManager(_ tree: InventoryTree) throws(InventoryError) -> ServiceManager {
        let text = try tree.string()
        guard let manager = ServiceManager(rawValue: text) else {
            let options = ServiceManager.allCases.map(\.rawValue)
            let hint = NameSuggestions.hint(NameSuggestions.near(text, in: options, limit: 1))
            throw tree.invalid(text, "expected one of \(options.joined(separator: ", "))\(hint)")
        }
        return manager
    }

    static func parseReplay(_ tree: InventoryTree) throws(InventoryError) -> ReplaySettings {
        let map = try tree.mapping(context: "replay", allowedKeys: ["binary_path", "service", "args", "fan_in"])
        var settings = ReplaySettings()
        if let fanIn = map["fan_in"] { settings.fanIn = try parseReplayFanIn(fanIn) }
        if let path = map["binary_path"] {
            settings.binaryPath = try serviceDefinitionText(path, try absolutePath(path))
        }
        if let service = map["service"] {
            settings.service = try serviceDefinitionText(service, try service.nonEmptyString())
        }
        if let args = map["args"] {
            guard case .mapping(let mapping) = args.node else { throw args.wrongType("a mapping") }
            let names = Array(mapping.keys.compactMap(\.string))
            let entries = try args.mapping(context: "replay.args", allowedKeys: names)
            for key in entries.order {
                settings.arguments[key] = try parseReplayArguments(
                    try entries.required(key), targetsRequired: settings.fanIn == nil)
            }
        }
        return settings
    }

    static func parseReplayArguments(_ tree: InventoryTree, targetsRequired: Bool = true) throws(InventoryError)
        -> ReplayArguments
    {
        let map = try tree.mapping(
            context: "replay args '\(tree.path)'",
            allowedKeys: ["capture", "targets", "allow_methods", "extra_args"])
        let captureTree = try map.required("capture")
        let capture = try serviceDefinitionText(captureTree, try captureTree.nonEmptyString())
        // goreplay accepts ":80" (every interface), so an empty host is allowed here;
        // `{address}` stands for each host's own address (see docs/inventory.md).
        let concrete = capture.replacingOccurrences(of: ReplayArguments.addressPlaceholder, with: "127.0.0.1")
        let parsed = GatewayHop.parse(concrete.hasPrefix(":") ? "0.0.0.0" + concrete : concrete)
        guard case .success(let hop) = parsed, hop.port != nil, hop.user == nil else {
            throw captureTree.invalid(capture, "expected [address]:port, e.g. 127.0.0.1:7999 or :80")
        }
        // With fan_in the replayer has the targets; capture hosts need none.
        let targets = targetsRequired || map["targets"] != nil ? try parseTargets(try map.required("targets")) : []
        var allowMethods: [String] = []
        if let methods = map["allow_methods"] {
            for item in try methods.list() {
                let method = try item.nonEmptyString()
                guard method.allSatisfy({ $0.isASCII && $0.isUppercase }) else {
                    throw item.invalid(method, "expected an upper-case HTTP method such as GET")
                }
                allowMethods.append(method)
            }
        }
        let extra = try serviceDefinitionList(map["extra_args"])
        return ReplayArguments(capture: capture, targets: targets, allowMethods: allowMethods, extraArgs: extra)
    }

    static func parseTargets(_ targetsTree: InventoryTree) throws(InventoryError) -> [String] {
        let targets = try serviceDefinitionList(targetsTree)
        guard !targets.isEmpty else { throw targetsTree.invalid("[]", "list at least one target URL") }
        for (index, target) in targets.enumerated() {
            guard let url = URL(string: target), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
                let item = try targetsTree.list()[index]
                throw item.invalid(target, "expected an http:// or https:// URL")
            }
        }
        return targets
    }

    static func parseReplayFanIn(_ tree: InventoryTree) throws(InventoryError) -> ReplayFanIn {
        let map = try tree.mapping(
            context: "replay.fan_in", allowedKeys: ["replayer", "port", "targets", "extra_args"])
        let replayerTree = try map.required("replayer")
        let replayer = try serviceDefinitionText(replayerTree, try replayerTree.nonEmptyString())
        let port = try map["port"]?.int(in: 1...65535) ?? ReplayFanIn.defaultPort
        let targets = try parseTargets(try map.required("targets"))
        let extra = try serviceDefinitionList(map["extra_args"])
        return ReplayFanIn(replayer: replayer, port: port, targets: targets, extraArgs: extra)
    }

    /// A value deploy-goreplay writes into a service definition (systemd unit, upstart job, run
    /// script), where a newline would start a directive of its own (`ExecStartPre=…` runs as root).
    static func serviceDefinitionText(_ tree: InventoryTree, _ text: String) throws(InventoryError) -> String {
        if let bad = text.unicodeScalars.first(where: { TerminalText.needsEscape($0) }) {
            throw tree.invalid(
                TerminalText.visible(text),
                "contains the control character U+\(String(format: "%04X", bad.value)); values written into the goreplay service definition may not contain control characters (a newline would add a directive of its own)"
            )
        }
        return text
    }

    /// A list of non-empty strings, each checked by `serviceDefinitionText`, located by item.
    static func serviceDefinitionList(_ tree: InventoryTree?) throws(InventoryError) -> [String] {
        guard let tree else { return [] }
        var values: [String] = []
        for item in try tree.list() { values.append(try serviceDefinitionText(item, try item.nonEmptyString())) }
        return values
    }

    static func parseHosts(_ tree: InventoryTree) throws(InventoryError) -> [(
        host: FleetHost, location: SourceLocation
    )] {
        var hosts: [(FleetHost, SourceLocation)] = []
        for item in try tree.list() {
            let map = try item.mapping(context: "host \(item.path)", allowedKeys: hostKeys)
            let nameTree = try map.required("name")
            let name = try nameTree.nonEmptyString()
            guard name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._".contains($0)) }) else {
                throw nameTree.invalid(name, "host names may contain only letters, digits, '-', '.' and '_'")
            }
            var host = FleetHost(name: name)
            if let address = map["address"] {
                let text = try address.nonEmptyString()
                guard case .success(let hop) = GatewayHop.parse(text), hop.user == nil, hop.port == nil else {
                    throw address.invalid(text, "expected a host name or IP address (put the port in 'port')")
                }
                host.address = hop.host
            }
            if let port = map["port"] { host.port = try port.int(in: 1...65535) }
            if let classes = map["puppet_classes"] { host.puppetClasses = try classes.stringList() }
            if let nodeClass = map["node_class"] { host.nodeClass = try nodeClass.nonEmptyString() }
            if let nodeType = map["node_type"] { host.nodeType = try nodeType.nonEmptyString() }
            if let manager = map["service_manager"] { host.serviceManager = try serviceManager(manager) }
            if let user = map["user"] { host.user = try user.nonEmptyString() }
            hosts.append((host, item.location))
        }
        return hosts
    }

    static func checkUnique(
        _ hosts: [(host: FleetHost, location: SourceLocation)], defaultPort: Int
    ) throws(InventoryError) {
        var byName: [String: SourceLocation] = [:]
        var byAddress: [String: (name: String, location: SourceLocation)] = [:]
        for (host, location) in hosts {
            if let first = byName[host.name.lowercased()] {
                throw InventoryError(.duplicateHostName(name: host.name, firstLocation: first), at: location)
            }
            byName[host.name.lowercased()] = location
            let port = host.port ?? defaultPort
            let key = "\(host.address.lowercased())|\(port)"
            if let first = byAddress[key] {
                throw InventoryError(
                    .duplicateAddress(
                        address: host.address, port: port,
                        firstHost: first.name, firstLocation: first.location),
                    at: location)
            }
            byAddress[key] = (host.name, location)
        }
    }

    static func absolutePath(_ tree: InventoryTree) throws(InventoryError) -> String {
        let path = try tree.nonEmptyString()
        guard path.hasPrefix("/") else { throw tree.invalid(path, "must be an absolute path on the hosts") }
        return path
    }

    /// Relative local paths are relative to the inventory file's directory; `~` is kept for later.
    static func resolve(_ path: String, against directory: String) -> String {
        if path.hasPrefix("/") || path.hasPrefix("~") || directory.isEmpty { return path }
        return (directory as NSString).appendingPathComponent(path)
    }
}
