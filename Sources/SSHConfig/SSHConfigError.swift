/// A position in an ssh_config file, for error messages and warnings.
public struct SSHConfigLocation: Sendable, Hashable, CustomStringConvertible {
    /// Path of the file as it was opened (or as passed to `parse`).
    public var path: String
    /// 1-based line number.
    public var line: Int

    public init(path: String, line: Int) {
        self.path = path
        self.line = line
    }

    public var description: String { "\(path):\(line)" }
}

/// Why an ssh_config file could not be loaded.
public enum SSHConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file (or a file named by `Include`) could not be read.
    case unreadableFile(path: String, reason: String)
    /// A line is malformed: unbalanced quotes, a keyword without a value, extra arguments.
    case syntax(SSHConfigLocation, message: String)
    /// A keyword's value is not acceptable for that keyword, e.g. `Port abc`.
    case invalidValue(SSHConfigLocation, keyword: String, value: String, reason: String)
    /// A `Host` or `Match` line that cannot be evaluated, e.g. `Match all host x`.
    case invalidCondition(SSHConfigLocation, message: String)
    /// `Include` nested more deeply than the limit; almost always a file including itself.
    case includeTooDeep(SSHConfigLocation, limit: Int)

    public var description: String {
        switch self {
        case .unreadableFile(let path, let reason):
            return "\(path): cannot read ssh config: \(reason)"
        case .syntax(let location, let message):
            return "\(location): \(message)"
        case .invalidValue(let location, let keyword, let value, let reason):
            return "\(location): bad value '\(value)' for \(keyword): \(reason)"
        case .invalidCondition(let location, let message):
            return "\(location): \(message)"
        case .includeTooDeep(let location, let limit):
            return "\(location): Include nested more than \(limit) levels deep (does a file include itself?)"
        }
    }
}

/// Something in the file that was understood but deliberately not applied.
public struct SSHConfigWarning: Sendable, Hashable, CustomStringConvertible {
    public var location: SSHConfigLocation
    public var message: String

    public init(location: SSHConfigLocation, message: String) {
        self.location = location
        self.message = message
    }

    public var description: String { "\(location): warning: \(message)" }
}
