import Yams

/// The problems ``YAMLTree`` reports, which each file format words in its own error: the
/// inventory's cases match these names, playbooks map them onto theirs.
public protocol YAMLReadProblem: Sendable {
    /// A key the format does not have; `suggestion` is the nearest allowed one.
    static func unknownKey(key: String, in context: String, suggestion: String?) -> Self
    /// The same key twice in one mapping; `firstLine` is the earlier one.
    static func duplicateKey(key: String, firstLine: Int?) -> Self
    /// A required key is absent.
    static func missingKey(key: String, in context: String) -> Self
    /// A value of the wrong YAML type; `found` says what it is instead.
    static func wrongType(path: String, expected: String, found: String) -> Self
    /// A value of the right type that is not acceptable.
    static func invalidValue(path: String, value: String, reason: String) -> Self
}

/// An error made of a location and a problem, as ``InventoryError`` and `PlaybookError` are.
public protocol LocatedYAMLError: Error {
    associatedtype Problem: YAMLReadProblem
    init(_ problem: Problem, at location: SourceLocation)
}

/// A YAML node with its key path and file, so every read can fail with a located error of the
/// reading format's own type (`InventoryError`, `PlaybookError`).
public struct YAMLTree<Failure: LocatedYAMLError> {
    public let node: Node
    /// Dotted key path for messages, e.g. `ssh.connect_timeout` or `hosts[2].name`.
    public let path: String
    public let file: String

    public init(node: Node, path: String, file: String) {
        self.node = node
        self.path = path
        self.file = file
    }

    public var location: SourceLocation {
        SourceLocation(file: file, line: node.mark?.line, column: node.mark?.column)
    }

    /// True for an empty value, `~` or `null` (treated as "not given").
    public var isNull: Bool {
        if case .scalar(let scalar) = node, scalar.style == .plain || scalar.style == .any {
            return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
        }
        return false
    }

    /// What the value is, for "must be X, not Y" messages.
    public var kindDescription: String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar(let scalar): return isNull ? "an empty value" : "the scalar '\(scalar.string)'"
        }
    }

    public func error(_ problem: Failure.Problem) -> Failure {
        Failure(problem, at: location)
    }

    public func wrongType(_ expected: String) -> Failure {
        error(.wrongType(path: path, expected: expected, found: kindDescription))
    }

    public func invalid(_ value: String, _ reason: String) -> Failure {
        error(.invalidValue(path: path, value: value, reason: reason))
    }

    /// Reads a mapping, rejecting unknown and duplicate keys (an unknown key names the nearest
    /// allowed one). Values' paths extend this tree's path with their key.
    public func mapping(context: String, allowedKeys: [String]) throws(Failure) -> YAMLMapping<Failure> {
        guard case .mapping(let mapping) = node else { throw wrongType("a mapping") }
        var entries: [String: (keyLine: Int?, value: YAMLTree)] = [:]
        var order: [String] = []
        for (keyNode, valueNode) in mapping {
            let keyTree = YAMLTree(node: keyNode, path: path, file: file)
            guard case .scalar(let keyScalar) = keyNode else {
                throw keyTree.error(
                    .wrongType(
                        path: "key in \(context)", expected: "a string",
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
    public func string() throws(Failure) -> String {
        guard case .scalar(let scalar) = node, !isNull else { throw wrongType("a string") }
        return scalar.string
    }

    /// A non-empty string.
    public func nonEmptyString() throws(Failure) -> String {
        let value = try string()
        guard !value.trimmingCharacters(in: .whitespaces).isEmpty else { throw invalid(value, "must not be empty") }
        return value
    }

    public func int(in range: ClosedRange<Int>) throws(Failure) -> Int {
        let text = try scalarText(expected: "an integer")
        guard let value = Int(text) else { throw wrongType("an integer") }
        guard range.contains(value) else {
            throw invalid(text, "must be from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    public func bool() throws(Failure) -> Bool {
        let text = try scalarText(expected: "true or false")
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw wrongType("true or false")
        }
    }

    public func duration() throws(Failure) -> Duration {
        let text = try scalarText(expected: "a duration such as 10s")
        guard let value = DurationText.parse(text), value > .zero else {
            throw invalid(text, "expected a positive duration such as 500ms, 10s, 10m or 1h30m")
        }
        return value
    }

    public func list() throws(Failure) -> [YAMLTree] {
        guard case .sequence(let sequence) = node else { throw wrongType("a list") }
        return sequence.enumerated().map { index, child in
            YAMLTree(node: child, path: "\(path)[\(index)]", file: file)
        }
    }

    public func stringList() throws(Failure) -> [String] {
        var values: [String] = []
        for item in try list() { values.append(try item.nonEmptyString()) }
        return values
    }

    private func scalarText(expected: String) throws(Failure) -> String {
        guard case .scalar(let scalar) = node, !isNull else { throw wrongType(expected) }
        return scalar.string
    }
}

/// A YAML mapping read by ``YAMLTree/mapping(context:allowedKeys:)``.
public struct YAMLMapping<Failure: LocatedYAMLError> {
    public let tree: YAMLTree<Failure>
    public let context: String
    /// Every value given, null ones included.
    public let entries: [String: YAMLTree<Failure>]
    /// Keys in file order.
    public let order: [String]

    /// The value for `key`, or `nil` when absent or null.
    public subscript(key: String) -> YAMLTree<Failure>? {
        guard let value = entries[key], !value.isNull else { return nil }
        return value
    }

    public func required(_ key: String) throws(Failure) -> YAMLTree<Failure> {
        guard let value = self[key] else {
            throw tree.error(.missingKey(key: key, in: context))
        }
        return value
    }
}
