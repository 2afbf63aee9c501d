import Fleet
import Foundation
import Yams

/// Reads and validates playbooks; every error names file, line and column.
public enum PlaybookLoader {
    static let topKeys = [
        "name", "summary", "description", "changes", "respect_data_sync_window",
        "args", "let", "hosts", "runs_once", "serial", "max_hosts", "steps",
    ]
    static let stepKinds = [
        "run", "run_read", "sudo", "sudo_read", "service", "ensure_file", "read_file", "read_command", "check", "call",
        "wait_for_process", "message",
    ]
    /// Values every playbook may use: from the inventory and the host, never read from it.
    public static let builtInNames = ["host", "environment", "marker_path"]

    /// Every `*.yml` in `directory`, sorted by file name; a missing directory has none.
    public static func loadDirectory(_ directory: String) throws(PlaybookError) -> [Playbook] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            return []
        }
        if let problem = ConfigurationFileTrust.problem(with: directory) {
            throw PlaybookError(.unreadable(problem), at: SourceLocation(file: directory))
        }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasSuffix(".yml") || $0.hasSuffix(".yaml") }.sorted()
        var playbooks: [Playbook] = []
        for name in names {
            let path = (directory as NSString).appendingPathComponent(name)
            if let problem = ConfigurationFileTrust.problem(with: path) {
                throw PlaybookError(.unreadable(problem), at: SourceLocation(file: path))
            }
            guard let data = FileManager.default.contents(atPath: path),
                let text = String(data: data, encoding: .utf8)
            else {
                throw PlaybookError(.unreadable("not readable UTF-8 text"), at: SourceLocation(file: path))
            }
            playbooks.append(try parse(text, file: path))
        }
        return playbooks
    }

    /// Parses one playbook.
    public static func parse(_ text: String, file: String) throws(PlaybookError) -> Playbook {
        if let deep = YAMLNestingLimit.firstViolation(in: text) {
            throw PlaybookError(
                .syntax(
                    "nested more than \(YAMLNestingLimit.maximumDepth) levels deep; no playbook needs that, so the file is refused unread"
                ),
                at: SourceLocation(file: file, line: deep.line, column: deep.column))
        }
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            switch error {
            case .scanner(let context, let problem, let mark, _),
                .parser(let context, let problem, let mark, _),
                .composer(let context, let problem, let mark, _):
                let message = context.map { "\(problem) (\($0.text))" } ?? problem
                throw PlaybookError(
                    .syntax(message), at: SourceLocation(file: file, line: mark.line, column: mark.column))
            default:
                throw PlaybookError(.syntax("\(error)"), at: SourceLocation(file: file))
            }
        } catch {
            throw PlaybookError(.syntax("\(error)"), at: SourceLocation(file: file))
        }
        guard let node else {
            throw PlaybookError(.syntax("the file is empty"), at: SourceLocation(file: file, line: 1, column: 1))
        }
        let reader = Reader(file: file)
        let top = try reader.mapping(node, context: "the playbook", allowed: topKeys)
        let nameNode = try reader.required(top, "name", in: "the playbook", at: node)
        let name = try reader.string(nameNode, key: "name")
        guard name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }),
            name.first?.isLetter == true, !name.hasSuffix(".")
        else {
            throw reader.invalid(
                nameNode, key: "name", value: name,
                reason: "a task name is letters, digits, '_', '.' and '-', starting with a letter")
        }
        // A selector word (`all`, `class`, …) is never read as a task on the command line (found by fuzzing).
        guard !FabricCommandLine.selectorNames.contains(name) else {
            throw reader.invalid(
                nameNode, key: "name", value: name,
                reason: "'\(name)' is a host selector on the command line, so no one could run it; choose another name")
        }
        let summary = try reader.string(
            try reader.required(top, "summary", in: "the playbook", at: node), key: "summary")
        let details =
            try top["description"].map { node throws(PlaybookError) in
                try reader.string(node, key: "description").trimmingCharacters(in: .whitespacesAndNewlines)
            } ?? ""
        let changesNode = try reader.required(top, "changes", in: "the playbook", at: node)
        let changes = try reader.bool(changesNode, key: "changes")
        let window =
            try top["respect_data_sync_window"].map { node throws(PlaybookError) in
                try reader.bool(node, key: "respect_data_sync_window")
            } ?? false
        let stepsNode = try reader.required(top, "steps", in: "the playbook", at: node)
        guard case .sequence(let sequence) = stepsNode, !sequence.isEmpty else {
            throw reader.error(stepsNode, .wrongType(key: "steps", expected: "a non-empty list of steps"))
        }
        var defined = Set(builtInNames + commandBuiltInNames)
        let arguments = try top["args"].map { node throws(PlaybookError) in try reader.arguments(node) } ?? []
        for argument in arguments {
            guard !defined.contains(argument.name) else {
                throw reader.error(
                    top["args"]!,
                    .invalidValue(
                        key: "args", value: argument.name,
                        reason: "'\(argument.name)' is a built-in name; choose another"))
            }
            defined.insert(argument.name)
        }
        var lets: [LetValue] = []
        if let letNode = top["let"] {
            guard case .mapping(let mapping) = letNode else {
                throw reader.error(letNode, .wrongType(key: "let", expected: "a mapping of NAME: TEMPLATE"))
            }
            for (keyNode, valueNode) in mapping {
                let letName = try reader.variable(keyNode, key: "let")
                guard !defined.contains(letName) else {
                    throw reader.invalid(
                        keyNode, key: "let", value: letName, reason: "already defined; choose another name")
                }
                lets.append(
                    LetValue(
                        name: letName, template: try reader.template(valueNode, key: "let.\(letName)", defined: defined)
                    ))
                defined.insert(letName)
            }
        }
        let commandNames = defined
        let pin = try top["hosts"].map { node throws(PlaybookError) in try reader.pin(node, key: "hosts") }
        let runsOnce =
            try top["runs_once"].map { node throws(PlaybookError) in try reader.bool(node, key: "runs_once") } ?? false
        let serial =
            try top["serial"].map { node throws(PlaybookError) in try reader.bool(node, key: "serial") } ?? false
        var maxHosts: Int?
        if let maxNode = top["max_hosts"] {
            let text = try reader.string(maxNode, key: "max_hosts")
            guard let value = Int(text), value >= 1 else {
                throw reader.invalid(maxNode, key: "max_hosts", value: text, reason: "a whole number from 1")
            }
            maxHosts = value
        }
        var steps: [PlaybookStep] = []
        for stepNode in sequence {
            steps.append(try reader.step(stepNode, defined: &defined, commandNames: commandNames))
        }
        // `changes:` decides whether production asks first, so it must agree with the steps: a
        // read-only playbook has only read steps (calls are checked by the registry).
        if !changes, let step = steps.first(where: \.canChangeHosts) {
            throw PlaybookError(
                .changesContradicted(step: step.summary, kind: step.kindName, changesLine: changesNode.mark?.line),
                at: SourceLocation(file: file, line: step.line, column: step.column))
        }
        return Playbook(
            name: name, summary: summary, details: details, changes: changes,
            respectDataSyncWindow: window, arguments: arguments, lets: lets, pin: pin, runsOnce: runsOnce,
            serial: serial, maxHosts: maxHosts, steps: steps, path: file, nameLine: nameNode.mark?.line)
    }

    /// Typed reads of YAML nodes with located errors. Mappings (allowed keys, duplicates, the near
    /// key) are read by Fleet's ``YAMLTree``, which reads inventories too.
    struct Reader {
        let file: String

        /// `node`, named `key` in messages.
        func tree(_ node: Node, key: String = "") -> YAMLTree<PlaybookError> {
            YAMLTree(node: node, path: key, file: file)
        }

        func location(_ node: Node) -> SourceLocation {
            tree(node).location
        }

        func error(_ node: Node, _ problem: PlaybookError.Problem) -> PlaybookError {
            tree(node).error(problem)
        }

        func invalid(_ node: Node, key: String, value: String, reason: String) -> PlaybookError {
            error(node, .invalidValue(key: key, value: value, reason: reason))
        }

        /// A mapping with only `allowed` keys, each once; values by key (null ones included).
        func mapping(_ node: Node, context: String, allowed: [String]) throws(PlaybookError) -> [String: Node] {
            try tree(node, key: context).mapping(context: context, allowedKeys: allowed).entries.mapValues(\.node)
        }

        func required(_ map: [String: Node], _ key: String, in context: String, at node: Node) throws(PlaybookError)
            -> Node
        {
            guard let value = map[key] else { throw error(node, .missingKey(key: key, in: context)) }
            return value
        }

        func string(_ node: Node, key: String) throws(PlaybookError) -> String {
            guard case .scalar(let scalar) = node else { throw error(node, .wrongType(key: key, expected: "a string")) }
            return scalar.string
        }

        func nonEmpty(_ node: Node, key: String) throws(PlaybookError) -> String {
            let value = try string(node, key: key)
            guard !value.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw invalid(node, key: key, value: value, reason: "must not be empty")
            }
            return value
        }

        func bool(_ node: Node, key: String) throws(PlaybookError) -> Bool {
            switch (try? string(node, key: key))?.lowercased() {
            case "true", "yes": return true
            case "false", "no": return false
            default: throw error(node, .wrongType(key: key, expected: "true or false"))
            }
        }

        func variable(_ node: Node, key: String) throws(PlaybookError) -> String {
            let name = try string(node, key: key)
            guard isVariableName(name) else {
                throw invalid(node, key: key, value: name, reason: "a name is lower-case letters, digits and '_'")
            }
            return name
        }

        func template(_ node: Node, key: String, defined: Set<String>, hint: String? = nil) throws(PlaybookError)
            -> Template
        {
            let text = try string(node, key: key)
            var references: [String] = []
            var rest = Substring(text)
            while let open = rest.range(of: "{{") {
                guard let close = rest[open.upperBound...].range(of: "}}") else {
                    throw invalid(node, key: key, value: text, reason: "'{{' without '}}'")
                }
                let name = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
                guard defined.contains(name) else {
                    if let hint {
                        throw invalid(
                            node, key: key, value: "{{\(name)}}", reason: "'\(name)' is not defined here: \(hint)")
                    }
                    throw error(node, .undefinedName(name, defined: defined.sorted()))
                }
                references.append(name)
                rest = rest[close.upperBound...]
            }
            // Normalise `{{ name }}` to `{{name}}` so rendering is a plain replace.
            var normalised = text
            for name in references {
                normalised = normalised.replacingOccurrences(
                    of: #"\{\{\s*"# + name + #"\s*\}\}"#, with: "{{\(name)}}", options: .regularExpression)
            }
            return Template(text: normalised, references: references)
        }

        /// A shell command whose `{{NAME}}` placeholders are arguments, `let:` values or
        /// built-in names (never values read from hosts), each rendered as one quoted word.
        func command(_ node: Node, key: String, names: Set<String>) throws(PlaybookError) -> CommandTemplate {
            _ = try nonEmpty(node, key: key)
            let parsed = try template(
                node, key: key, defined: names,
                hint: "commands may use arguments, let: values and "
                    + commandBuiltInNames.joined(separator: ", ") + ", never values read from hosts")
            if let quoted = CommandTemplate.quotedPlaceholder(in: parsed.text) {
                throw invalid(
                    node, key: key, value: quoted,
                    reason: "a placeholder is quoted for the shell already; remove the quotes around \(quoted) "
                        + "(or build the text in let:)")
            }
            return CommandTemplate(text: parsed.text, references: parsed.references)
        }

        /// `args:` — a list of `{name, type, pattern, default, help}`.
        func arguments(_ node: Node) throws(PlaybookError) -> [PlaybookArgument] {
            guard case .sequence(let sequence) = node else {
                throw error(node, .wrongType(key: "args", expected: "a list of {name, type, pattern, default, help}"))
            }
            var result: [PlaybookArgument] = []
            for item in sequence {
                let fields = try mapping(
                    item, context: "an argument", allowed: ["name", "type", "pattern", "default", "help"])
                let nameNode = try required(fields, "name", in: "an argument", at: item)
                let name = try variable(nameNode, key: "args.name")
                guard !result.contains(where: { $0.name == name }) else {
                    throw invalid(nameNode, key: "args.name", value: name, reason: "declared twice")
                }
                var kind = PlaybookArgument.Kind.text
                if let typeNode = fields["type"] {
                    let text = try string(typeNode, key: "args.type")
                    guard let parsed = PlaybookArgument.Kind(rawValue: text) else {
                        throw invalid(
                            typeNode, key: "args.type", value: text,
                            reason: "use " + PlaybookArgument.Kind.allCases.map(\.rawValue).joined(separator: ", "))
                    }
                    kind = parsed
                }
                var pattern: String?
                if let patternNode = fields["pattern"] {
                    let text = try nonEmpty(patternNode, key: "args.pattern")
                    guard (try? NSRegularExpression(pattern: text)) != nil else {
                        throw invalid(patternNode, key: "args.pattern", value: text, reason: "not a regular expression")
                    }
                    pattern = text
                }
                let help =
                    try fields["help"].map { node throws(PlaybookError) in try string(node, key: "args.help") } ?? ""
                var argument = PlaybookArgument(name: name, kind: kind, pattern: pattern, defaultValue: nil, help: help)
                if let defaultNode = fields["default"] {
                    let value = try string(defaultNode, key: "args.default")
                    if let problem = argument.validate(value) {
                        throw invalid(defaultNode, key: "args.default", value: value, reason: problem)
                    }
                    argument.defaultValue = value
                } else if let previous = result.last, previous.defaultValue != nil {
                    throw invalid(
                        nameNode, key: "args.name", value: name,
                        reason: "a required argument cannot follow one with a default; give it a default or move it up")
                }
                result.append(argument)
            }
            return result
        }

        /// `hosts:` / `on:` — `{host: NAME}`, `{class: NAME}` or `{puppet_class: NAME}`, with `once`.
        func pin(_ node: Node, key: String) throws(PlaybookError) -> HostPin {
            let kinds = HostPin.Kind.allCases.map(\.rawValue)
            let fields = try mapping(node, context: key, allowed: kinds + ["once"])
            let given = kinds.filter { fields[$0] != nil }
            guard given.count == 1, let kindName = given.first, let kind = HostPin.Kind(rawValue: kindName),
                let valueNode = fields[kindName]
            else {
                throw error(
                    node,
                    .invalidValue(
                        key: key, value: given.joined(separator: ", "),
                        reason: "give exactly one of " + kinds.joined(separator: ", ")))
            }
            let value = try nonEmpty(valueNode, key: "\(key).\(kindName)")
            guard value.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.:-".contains($0)) }) else {
                throw invalid(
                    valueNode, key: "\(key).\(kindName)", value: value, reason: "letters, digits, '_', '.', ':' and '-'"
                )
            }
            let once =
                try fields["once"].map { node throws(PlaybookError) in try bool(node, key: "\(key).once") } ?? false
            return HostPin(kind: kind, value: value, once: once, location: location(valueNode))
        }

        func step(_ node: Node, defined: inout Set<String>, commandNames: Set<String>) throws(PlaybookError)
            -> PlaybookStep
        {
            let map = try mapping(node, context: "a step", allowed: PlaybookLoader.stepKinds + ["when", "on"])
            let kinds = PlaybookLoader.stepKinds.filter { map[$0] != nil }
            guard kinds.count == 1, let kind = kinds.first, let body = map[kind] else {
                throw error(node, .stepKind(found: kinds))
            }
            var condition: Condition?
            if let whenNode = map["when"] {
                let text = try nonEmpty(whenNode, key: "when")
                switch Condition.parse(text) {
                case .failure(let failure): throw error(whenNode, .badCondition(clause: failure.clause))
                case .success(let parsed):
                    for clause in parsed.clauses where !defined.contains(clause.name) {
                        throw error(whenNode, .undefinedName(clause.name, defined: defined.sorted()))
                    }
                    condition = parsed
                }
            }
            let action: PlaybookStep.Action
            switch kind {
            case "run", "run_read":
                action = .run(try command(body, key: kind, names: commandNames), readOnly: kind == "run_read")
            case "sudo", "sudo_read":
                action = .sudo(try command(body, key: kind, names: commandNames), readOnly: kind == "sudo_read")
            case "check":
                let fields: [String: Node]
                if case .scalar = body {
                    fields = ["command": body]
                } else {
                    fields = try mapping(
                        body, context: "check", allowed: ["command", "as", "sudo", "attempts", "every", "required"])
                }
                let text = try command(
                    try required(fields, "command", in: "check", at: body), key: "check.command", names: commandNames)
                let name = try fields["as"].map { node throws(PlaybookError) in try variable(node, key: "check.as") }
                let sudo =
                    try fields["sudo"].map { node throws(PlaybookError) in try bool(node, key: "check.sudo") } ?? false
                var attempts = 1
                if let attemptsNode = fields["attempts"] {
                    let value = try string(attemptsNode, key: "check.attempts")
                    guard let parsed = Int(value), (1...1000).contains(parsed) else {
                        throw invalid(
                            attemptsNode, key: "check.attempts", value: value, reason: "a number from 1 to 1000")
                    }
                    attempts = parsed
                }
                var every = Duration.seconds(5)
                if let everyNode = fields["every"] {
                    let value = try string(everyNode, key: "check.every")
                    guard let parsed = DurationText.parse(value), parsed >= .milliseconds(100), parsed <= .seconds(300)
                    else {
                        throw invalid(
                            everyNode, key: "check.every", value: value,
                            reason: "a duration from 100ms to 5m, such as 5s")
                    }
                    every = parsed
                }
                let required =
                    try fields["required"].map { node throws(PlaybookError) in try bool(node, key: "check.required") }
                    ?? false
                guard name != nil || required else {
                    throw error(body, .missingKey(key: "as", in: "check (or set required: true)"))
                }
                if let name { defined.insert(name) }
                action = .check(text, as: name, sudo: sudo, attempts: attempts, every: every, required: required)
            case "call":
                let taskNode: Node
                var argumentNodes: [Node] = []
                if case .scalar = body {
                    taskNode = body
                } else {
                    let fields = try mapping(body, context: "call", allowed: ["task", "args"])
                    taskNode = try required(fields, "task", in: "call", at: body)
                    if let argsNode = fields["args"] {
                        guard case .sequence(let sequence) = argsNode else {
                            throw error(argsNode, .wrongType(key: "call.args", expected: "a list of values"))
                        }
                        argumentNodes = Array(sequence)
                    }
                }
                var task = try nonEmpty(taskNode, key: "call.task")
                var arguments = try argumentNodes.map { node throws(PlaybookError) in
                    try template(node, key: "call.args", defined: commandNames)
                }
                // `call: app.stop:mongodb` — Fabric's word, fixed arguments split on commas.
                if case .scalar = body, let colon = task.firstIndex(of: ":") {
                    arguments = task[task.index(after: colon)...].split(
                        separator: ",", omittingEmptySubsequences: false
                    )
                    .map { Template(text: String($0), references: []) }
                    task = String(task[..<colon])
                    if arguments.contains(where: { $0.text.contains("{{") }) {
                        throw invalid(
                            body, key: "call", value: task,
                            reason: "use {task: NAME, args: [...]} for arguments with {{NAME}}")
                    }
                }
                action = .call(task: task, arguments: arguments)
            case "message": action = .message(try template(body, key: "message", defined: defined))
            case "service":
                let fields = try mapping(body, context: "service", allowed: ["action", "name", "as"])
                let actionNode = try required(fields, "action", in: "service", at: body)
                let actionText = try string(actionNode, key: "action")
                guard let serviceAction = ServiceAction(rawValue: actionText) else {
                    throw invalid(
                        actionNode, key: "service.action", value: actionText,
                        reason: "use " + ServiceAction.allCases.map(\.rawValue).joined(separator: ", "))
                }
                let nameNode = try required(fields, "name", in: "service", at: body)
                let serviceName = try string(nameNode, key: "service.name")
                do {
                    _ = try ServiceName(validating: serviceName)
                } catch {
                    throw invalid(nameNode, key: "service.name", value: serviceName, reason: error.description)
                }
                let name = try fields["as"].map { node throws(PlaybookError) in try variable(node, key: "service.as") }
                if let name { defined.formUnion([name, name + "_name"]) }
                action = .service(serviceAction, logicalName: serviceName, as: name)
            case "ensure_file":
                let fields = try mapping(body, context: "ensure_file", allowed: ["path", "content", "mode"])
                let path = try template(
                    try required(fields, "path", in: "ensure_file", at: body), key: "ensure_file.path", defined: defined
                )
                let content = try string(
                    try required(fields, "content", in: "ensure_file", at: body), key: "ensure_file.content")
                var mode: String?
                if let modeNode = fields["mode"] {
                    let text = try string(modeNode, key: "ensure_file.mode")
                    guard (3...4).contains(text.count), text.allSatisfy({ ("0"..."7").contains($0) }) else {
                        throw invalid(
                            modeNode, key: "ensure_file.mode", value: text,
                            reason: "an octal mode such as '0644' (quote it)")
                    }
                    mode = text
                }
                action = .ensureFile(path: path, content: content, mode: mode)
            case "read_file":
                let fields = try mapping(body, context: "read_file", allowed: ["path", "as"])
                let path = try template(
                    try required(fields, "path", in: "read_file", at: body), key: "read_file.path", defined: defined)
                let name = try variable(try required(fields, "as", in: "read_file", at: body), key: "read_file.as")
                defined.formUnion([name, name + "_exists"])
                action = .readFile(path: path, as: name)
            case "read_command":
                let fields = try mapping(body, context: "read_command", allowed: ["command", "as", "sudo"])
                let text = try command(
                    try required(fields, "command", in: "read_command", at: body), key: "read_command.command",
                    names: commandNames)
                let name = try variable(
                    try required(fields, "as", in: "read_command", at: body), key: "read_command.as")
                let sudo =
                    try fields["sudo"].map { node throws(PlaybookError) in try bool(node, key: "read_command.sudo") }
                    ?? false
                defined.insert(name)
                action = .readCommand(text, as: name, sudo: sudo)
            default: // wait_for_process
                let fields = try mapping(body, context: "wait_for_process", allowed: ["name", "timeout", "state"])
                let nameNode = try required(fields, "name", in: "wait_for_process", at: body)
                let process = try string(nameNode, key: "wait_for_process.name")
                guard (1...15).contains(process.count),
                    process.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) })
                else {
                    throw invalid(
                        nameNode, key: "wait_for_process.name", value: process,
                        reason: "a command name (at most 15 letters, digits, '_', '.', '-')")
                }
                var timeout = Duration.seconds(20)
                if let timeoutNode = fields["timeout"] {
                    let text = try string(timeoutNode, key: "wait_for_process.timeout")
                    guard let value = DurationText.parse(text), value > .zero, value <= .seconds(600) else {
                        throw invalid(
                            timeoutNode, key: "wait_for_process.timeout", value: text,
                            reason: "a duration from 1s to 10m, such as 20s")
                    }
                    timeout = value
                }
                var running = true
                if let stateNode = fields["state"] {
                    switch try string(stateNode, key: "wait_for_process.state") {
                    case "running": running = true
                    case "stopped": running = false
                    case let other:
                        throw invalid(
                            stateNode, key: "wait_for_process.state", value: other, reason: "use running or stopped")
                    }
                }
                defined.insert("procs")
                action = .waitForProcess(name: process, timeout: timeout, running: running)
            }
            let pin = try map["on"].map { node throws(PlaybookError) in try self.pin(node, key: "on") }
            return PlaybookStep(
                action: action, condition: condition, pin: pin, line: node.mark?.line ?? 0,
                column: node.mark?.column ?? 0)
        }
    }
}
