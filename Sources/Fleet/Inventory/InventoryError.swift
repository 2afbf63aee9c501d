/// Where in an inventory file something is.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    /// File path as given to the loader.
    public var file: String
    /// 1-based line, if known.
    public var line: Int?
    /// 1-based column, if known.
    public var column: Int?

    /// Creates a location.
    public init(file: String, line: Int? = nil, column: Int? = nil) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// `file:line:column`, omitting what is unknown.
    public var description: String {
        var text = file
        if let line { text += ":\(line)" }
        if let line = line, line > 0, let column { text += ":\(column)" }
        return text
    }
}

/// An inventory that cannot be used, with where and why.
///
/// `description` reads `FILE:LINE:COLUMN: MESSAGE`, e.g.
/// `inventories/production.yml:12:3: unknown key 'paralelism' in environment (did you mean 'parallelism'?)`.
public struct InventoryError: LocatedYAMLError, Sendable, Hashable, CustomStringConvertible {
    /// Where the problem is.
    public var location: SourceLocation
    /// What the problem is.
    public var problem: Problem

    /// Creates an error.
    public init(_ problem: Problem, at location: SourceLocation) {
        self.problem = problem
        self.location = location
    }

    /// The kinds of inventory problem.
    public enum Problem: YAMLReadProblem, Hashable, CustomStringConvertible {
        /// The file could not be read (missing, permissions, not UTF-8).
        case unreadable(reason: String)
        /// The file is not valid YAML.
        case syntax(String)
        /// A key that the schema does not have; `suggestion` is the nearest valid key.
        case unknownKey(key: String, in: String, suggestion: String?)
        /// The same key twice in one mapping; `firstLine` is the earlier one.
        case duplicateKey(key: String, firstLine: Int?)
        /// A required key is absent.
        case missingKey(key: String, in: String)
        /// A value of the wrong YAML type (e.g. a list where a string belongs).
        case wrongType(path: String, expected: String, found: String)
        /// A value of the right type that is not acceptable (bad duration, time, time zone, port…).
        case invalidValue(path: String, value: String, reason: String)
        /// Two hosts with the same name; `firstLocation` is the earlier one.
        case duplicateHostName(name: String, firstLocation: SourceLocation)
        /// Two hosts with the same address and port.
        case duplicateAddress(address: String, port: Int, firstHost: String, firstLocation: SourceLocation)
        /// No inventory file for the environment; lists what exists and where it looked.
        case unknownEnvironment(name: String, available: [String], searched: [String])

        public var description: String {
            switch self {
            case .unreadable(let reason):
                return "cannot read inventory: \(reason)"
            case .syntax(let message):
                return "invalid YAML: \(message)"
            case .unknownKey(let key, let context, let suggestion):
                return "unknown key '\(key)' in \(context)" + NameSuggestions.hint(suggestion.map { [$0] } ?? [])
            case .duplicateKey(let key, let firstLine):
                return "duplicate key '\(key)'" + (firstLine.map { " (first given on line \($0))" } ?? "")
            case .missingKey(let key, let context):
                return "missing required key '\(key)' in \(context)"
            case .wrongType(let path, let expected, let found):
                return "'\(path)' must be \(expected), not \(found)"
            case .invalidValue(let path, let value, let reason):
                return "'\(path)': invalid value '\(value)': \(reason)"
            case .duplicateHostName(let name, let first):
                return "duplicate host name '\(name)' (first defined at \(first))"
            case .duplicateAddress(let address, let port, let firstHost, let first):
                return "address \(address):\(port) is already used by host '\(firstHost)' (at \(first))"
            case .unknownEnvironment(let name, let available, let searched):
                let hint = NameSuggestions.hint(NameSuggestions.near(name, in: available, limit: 3))
                let list = available.isEmpty ? "none found" : available.joined(separator: ", ")
                return "unknown environment '\(name)'\(hint); available: \(list)"
                    + " (searched: \(searched.joined(separator: ", ")))"
            }
        }
    }

    public var description: String { "\(location): \(problem)" }
}
