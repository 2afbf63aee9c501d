import Yams

/// A YAML node with its key path and file, so every read can fail with a located error.
struct YAMLTree {
    let node: Node
    /// Dotted key path for messages, e.g. `ssh.connect_timeout` or `hosts[2].name`.
    let path: String
    let file: String

    var location: SourceLocation {
        SourceLocation(file: file, line: node.mark?.line, column: node.mark?.column)
    }

    /// True for an empty value, `~` or `null` (treated as "not given").
    var isNull: Bool {
        if case .scalar(let scalar) = node, scalar.style == .plain || scalar.style == .any {
            return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
        }
        return false
    }

    /// What the value is, for "must be X, not Y" messages.
    var kindDescription: String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar(let scalar): return isNull ? "an empty value" : "the scalar '\(scalar.string)'"
        }
    }

    func error(_ problem: InventoryError.Problem) -> InventoryError {
        InventoryError(problem, at: location)
    }

    func wrongType(_ expected: String) -> InventoryError {
        error(.wrongType(path: path, expected: expected, found: kindDescription))
    }

    func invalid(_ value: String, _ reason: String) -> InventoryError {
        error(.invalidValue(path: path, value: value, reason: reason))
    }

    /// Reads a mapping, rejecting unknown and duplicate keys.
    func mapping(context: String, allowedKeys: [String]) throws(InventoryError) -> YAMLMapping {
        guard case .mapping(let mapping) = node else { throw wrongType("a mapping") }
        var entries: [String: (keyLine: Int?, value: YAMLTree)] = [:]
        var order: [String] = []
        for (keyNode, valueNode) in mapping {
            let keyTree = YAMLTree(node: keyNode, path: path, file: file)
            guard case .scalar(let keyScalar) = keyNode else {
                throw keyTree.error(.wrongType(path: "key in \(context)", expected: "a string",
                                               found: keyTree.kindDescription))
            }
            let key = keyScalar.string
            if let first = entries[key] {
                throw keyTree.error(.duplicateKey(key: key, firstLine: first.keyLine))
            }
            guard allowedKeys.contains(key) else {
                let suggestion = NameSuggestions.near(key, in: allowedKeys, limit: 1).first
                throw keyTree.error(.unknownKey(key: key, in: context, suggestion: suggestion))
            }
            let childPath = path.isEmpty ? key : "\(path).\(key)"
            entries[key] = (keyNode.mark?.line, YAMLTree(node: valueNode, path: childPath, file: file))
            order.append(key)
        }
        return YAMLMapping(tree: self, context: context, entries: entries.mapValues(\.value), order: order)
    }

    /// Any scalar, as written (so `23:00` stays text rather than YAML 1.1 sexagesimal).
    func string() throws(InventoryError) -> String {
        guard case .scalar(let scalar) = node, !isNull else { throw wrongType("a string") }
        return scalar.string
    }

    /// A non-empty string.
    func nonEmptyString() throws(InventoryError) -> String {
        let value = try string()
        guard !value.trimmingCharacters(in: .whitespaces).isEmpty else { throw invalid(value, "must not be empty") }
        return value
    }

    func int(in range: ClosedRange<Int>) throws(InventoryError) -> Int {
        let text = try scalarText(expected: "an integer")
        guard let value = Int(text) else { throw wrongType("an integer") }
        guard range.contains(value) else {
            throw invalid(text, "must be from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    func bool() throws(InventoryError) -> Bool {
        let text = try scalarText(expected: "true or false")
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw wrongType("true or false")
        }
    }

    func duration() throws(InventoryError) -> Duration {
        let text = try scalarText(expected: "a duration such as 10s")
        guard let value = DurationText.parse(text), value > .zero else {
            throw invalid(text, "expected a positive duration such as 500ms, 10s, 10m or 1h30m")
        }
        return value
    }

    func list() throws(InventoryError) -> [YAMLTree] {
        guard case .sequence(let sequence) = node else { throw wrongType("a list") }
        return sequence.enumerated().map { index, child in
            YAMLTree(node: child, path: "\(path)[\(index)]", file: file)
        }
    }

    func stringList() throws(InventoryError) -> [String] {
        var values: [String] = []
        for item in try list() { values.append(try item.nonEmptyString()) }
        return values
    }

    private func scalarText(expected: String) throws(InventoryError) -> String {
        guard case .scalar(let scalar) = node, !isNull else { throw wrongType(expected) }
        return scalar.string
    }
}

/// A YAML mapping read by ``YAMLTree/mapping(context:allowedKeys:)``.
struct YAMLMapping {
    let tree: YAMLTree
    let context: String
    let entries: [String: YAMLTree]
    /// Keys in file order.
    let order: [String]

    /// The value for `key`, or `nil` when absent or null.
    subscript(key: String) -> YAMLTree? {
        guard let value = entries[key], !value.isNull else { return nil }
        return value
    }

    func required(_ key: String) throws(InventoryError) -> YAMLTree {
        guard let value = self[key] else {
            throw tree.error(.missingKey(key: key, in: context))
        }
        return value
    }
}
