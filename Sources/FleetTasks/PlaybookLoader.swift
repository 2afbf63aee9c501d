import Fleet
import Foundation
import Yams

/// Reads and validates playbooks; every error names file, line and column.
public enum PlaybookLoader {
    static let topKeys = ["name", "summary", "description", "changes", "respect_data_sync_window", "steps"]
    static let stepKinds = ["run", "sudo", "service", "ensure_file", "read_file", "read_command", "wait_for_process", "message"]
    /// Values every playbook may use: from the inventory and the host, never read from it.
    public static let builtInNames = ["host", "environment", "marker_path"]

    /// Every `*.yml` in `directory`, sorted by file name; a missing directory has none.
    public static func loadDirectory(_ directory: String) throws(PlaybookError) -> [Playbook] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            return []
        }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasSuffix(".yml") || $0.hasSuffix(".yaml") }.sorted()
        var playbooks: [Playbook] = []
        for name in names {
            let path = (directory as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: path),
                  let text = String(data: data, encoding: .utf8) else {
                throw PlaybookError(.unreadable("not readable UTF-8 text"), at: SourceLocation(file: path))
            }
            playbooks.append(try parse(text, file: path))
        }
        return playbooks
    }

    /// Parses one playbook.
    public static func parse(_ text: String, file: String) throws(PlaybookError) -> Playbook {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            switch error {
            case .scanner(let context, let problem, let mark, _),
                 .parser(let context, let problem, let mark, _),
                 .composer(let context, let problem, let mark, _):
                let message = context.map { "\(problem) (\($0.text))" } ?? problem
                throw PlaybookError(.syntax(message), at: SourceLocation(file: file, line: mark.line, column: mark.column))
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
              name.first?.isLetter == true, !name.hasSuffix(".") else {
            throw reader.invalid(nameNode, key: "name", value: name,
                                 reason: "a task name is letters, digits, '_', '.' and '-', starting with a letter")
        }
        let summary = try reader.string(try reader.required(top, "summary", in: "the playbook", at: node), key: "summary")
        let details = try top["description"].map { node throws(PlaybookError) in try reader.string(node, key: "description") } ?? ""
        let changes = try reader.bool(try reader.required(top, "changes", in: "the playbook", at: node), key: "changes")
        let window = try top["respect_data_sync_window"].map { node throws(PlaybookError) in
            try reader.bool(node, key: "respect_data_sync_window")
        } ?? false
        let stepsNode = try reader.required(top, "steps", in: "the playbook", at: node)
        guard case .sequence(let sequence) = stepsNode, !sequence.isEmpty else {
            throw reader.error(stepsNode, .wrongType(key: "steps", expected: "a non-empty list of steps"))
        }
        var defined = Set(builtInNames)
        var steps: [PlaybookStep] = []
        for stepNode in sequence {
            steps.append(try reader.step(stepNode, defined: &defined))
        }
        return Playbook(name: name, summary: summary, details: details, changes: changes,
                        respectDataSyncWindow: window, steps: steps, path: file, nameLine: nameNode.mark?.line)
    }

    /// Typed reads of YAML nodes with located errors.
    struct Reader {
        let file: String

        func location(_ node: Node) -> SourceLocation {
            SourceLocation(file: file, line: node.mark?.line, column: node.mark?.column)
        }

        func error(_ node: Node, _ problem: PlaybookError.Problem) -> PlaybookError {
            PlaybookError(problem, at: location(node))
        }

        func invalid(_ node: Node, key: String, value: String, reason: String) -> PlaybookError {
            error(node, .invalidValue(key: key, value: value, reason: reason))
        }

        /// A mapping with only `allowed` keys, in file order with key nodes.
        func mapping(_ node: Node, context: String, allowed: [String]) throws(PlaybookError) -> [String: Node] {
            guard case .mapping(let mapping) = node else {
                throw error(node, .wrongType(key: context, expected: "a mapping"))
            }
            var result: [String: Node] = [:]
            for (keyNode, value) in mapping {
                guard case .scalar(let key) = keyNode else {
                    throw error(keyNode, .wrongType(key: "key in \(context)", expected: "a string"))
                }
                guard allowed.contains(key.string) else {
                    throw error(keyNode, .unknownKey(key: key.string, in: context,
                                                     suggestion: NameSuggestions.near(key.string, in: allowed, limit: 1).first))
                }
                guard result[key.string] == nil else {
                    throw error(keyNode, .invalidValue(key: key.string, value: key.string, reason: "given twice"))
                }
                result[key.string] = value
            }
            return result
        }

        func required(_ map: [String: Node], _ key: String, in context: String, at node: Node) throws(PlaybookError) -> Node {
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

        func template(_ node: Node, key: String, defined: Set<String>) throws(PlaybookError) -> Template {
            let text = try string(node, key: key)
            var references: [String] = []
            var rest = Substring(text)
            while let open = rest.range(of: "{{") {
                guard let close = rest[open.upperBound...].range(of: "}}") else {
                    throw invalid(node, key: key, value: text, reason: "'{{' without '}}'")
                }
                let name = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
                guard defined.contains(name) else { throw error(node, .undefinedName(name, defined: Array(defined))) }
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

        /// A shell command: literal, never templated, so nothing read from a
        /// host is ever pasted into a shell.
        func command(_ node: Node, key: String) throws(PlaybookError) -> String {
            let value = try nonEmpty(node, key: key)
            guard !value.contains("{{") else {
                throw invalid(node, key: key, value: value,
                              reason: "commands are not templated (values read from hosts never reach a shell); use a fixed command")
            }
            return value
        }

        func step(_ node: Node, defined: inout Set<String>) throws(PlaybookError) -> PlaybookStep {
            let map = try mapping(node, context: "a step", allowed: PlaybookLoader.stepKinds + ["when"])
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
                        throw error(whenNode, .undefinedName(clause.name, defined: Array(defined)))
                    }
                    condition = parsed
                }
            }
            let action: PlaybookStep.Action
            switch kind {
            case "run": action = .run(try command(body, key: "run"))
            case "sudo": action = .sudo(try command(body, key: "sudo"))
            case "message": action = .message(try template(body, key: "message", defined: defined))
            case "service":
                let fields = try mapping(body, context: "service", allowed: ["action", "name", "as"])
                let actionNode = try required(fields, "action", in: "service", at: body)
                let actionText = try string(actionNode, key: "action")
                guard let serviceAction = ServiceAction(rawValue: actionText) else {
                    throw invalid(actionNode, key: "service.action", value: actionText,
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
                let path = try template(try required(fields, "path", in: "ensure_file", at: body), key: "ensure_file.path", defined: defined)
                let content = try string(try required(fields, "content", in: "ensure_file", at: body), key: "ensure_file.content")
                var mode: String?
                if let modeNode = fields["mode"] {
                    let text = try string(modeNode, key: "ensure_file.mode")
                    guard (3...4).contains(text.count), text.allSatisfy({ ("0"..."7").contains($0) }) else {
                        throw invalid(modeNode, key: "ensure_file.mode", value: text, reason: "an octal mode such as '0644' (quote it)")
                    }
                    mode = text
                }
                action = .ensureFile(path: path, content: content, mode: mode)
            case "read_file":
                let fields = try mapping(body, context: "read_file", allowed: ["path", "as"])
                let path = try template(try required(fields, "path", in: "read_file", at: body), key: "read_file.path", defined: defined)
                let name = try variable(try required(fields, "as", in: "read_file", at: body), key: "read_file.as")
                defined.formUnion([name, name + "_exists"])
                action = .readFile(path: path, as: name)
            case "read_command":
                let fields = try mapping(body, context: "read_command", allowed: ["command", "as", "sudo"])
                let text = try command(try required(fields, "command", in: "read_command", at: body), key: "read_command.command")
                let name = try variable(try required(fields, "as", in: "read_command", at: body), key: "read_command.as")
                let sudo = try fields["sudo"].map { node throws(PlaybookError) in try bool(node, key: "read_command.sudo") } ?? false
                defined.insert(name)
                action = .readCommand(text, as: name, sudo: sudo)
            default:  // wait_for_process
                let fields = try mapping(body, context: "wait_for_process", allowed: ["name", "timeout", "state"])
                let nameNode = try required(fields, "name", in: "wait_for_process", at: body)
                let process = try string(nameNode, key: "wait_for_process.name")
                guard (1...15).contains(process.count),
                      process.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }) else {
                    throw invalid(nameNode, key: "wait_for_process.name", value: process,
                                  reason: "a command name (at most 15 letters, digits, '_', '.', '-')")
                }
                var timeout = Duration.seconds(20)
                if let timeoutNode = fields["timeout"] {
                    let text = try string(timeoutNode, key: "wait_for_process.timeout")
                    guard let value = DurationText.parse(text), value > .zero, value <= .seconds(600) else {
                        throw invalid(timeoutNode, key: "wait_for_process.timeout", value: text,
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
                        throw invalid(stateNode, key: "wait_for_process.state", value: other, reason: "use running or stopped")
                    }
                }
                defined.insert("procs")
                action = .waitForProcess(name: process, timeout: timeout, running: running)
            }
            return PlaybookStep(action: action, condition: condition, line: node.mark?.line ?? 0)
        }
    }
}
