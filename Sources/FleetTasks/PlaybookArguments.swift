import Fleet
import Foundation
import SSHTransport

/// A declared playbook argument (`args:`): given positionally in declaration order
/// (`puppet.disable:REASON`), as `NAME=VALUE`, or by `--set NAME=VALUE`; validated
/// before any host is touched and substituted into commands shell-quoted.
public struct PlaybookArgument: Sendable, Hashable {
    /// What a value may be.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// Any printable text, at most 1024 characters (no control characters).
        case text
        /// One word: letters, digits and `_ . : @ / + , = -`.
        case word
        /// A whole number from 0 to 1000000.
        case int
        /// A host name: letters, digits, `.` and `-`.
        case host
        /// A service name, as `app.*` takes.
        case service
    }

    public var name: String
    public var kind: Kind
    /// A regular expression the whole value must match, besides the type.
    public var pattern: String?
    /// Used when the argument is not given; nil: required.
    public var defaultValue: String?
    /// One line for `help:TASK`.
    public var help: String

    /// The value if it is acceptable, else why not.
    public func validate(_ value: String) -> String? {
        switch kind {
        case .text:
            if value.count > 1024 { return "at most 1024 characters" }
            if value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                return "control characters (newlines, tabs) are not allowed; write it on one line"
            }
        case .word:
            let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:@/+,=-")
            if value.isEmpty || value.count > 256 || !value.allSatisfy(allowed.contains) {
                return "one word of letters, digits and _ . : @ / + , = - (at most 256)"
            }
        case .int:
            if value.isEmpty || value.count > 7 || !value.allSatisfy(\.isASCII) || !value.allSatisfy(\.isNumber)
                || (Int(value) ?? Int.max) > 1_000_000
            {
                return "a whole number from 0 to 1000000"
            }
        case .host:
            let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
            if value.isEmpty || value.count > 253 || !value.allSatisfy(allowed.contains) || value.first == "-" {
                return "a host name (letters, digits, '.' and '-')"
            }
        case .service:
            do { _ = try ServiceName(validating: value) } catch { return error.description }
        }
        if let pattern, value.range(of: "^(?:" + pattern + ")$", options: .regularExpression) == nil {
            return "must match \(pattern)"
        }
        return nil
    }

}

/// Hosts a playbook or step is pinned to, from the inventory (fabric-scripts' `@hosts`).
public struct HostPin: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case host, `class`
        case puppetClass = "puppet_class"
    }

    public var kind: Kind
    public var value: String
    /// Only the first matching host (Fabric's `runs_once`).
    public var once: Bool
    /// Where the pin is written, for errors at plan time.
    public var location: SourceLocation

    public var description: String { "\(kind.rawValue): \(value)" + (once ? " (first host only)" : "") }

    /// Why a pin matches no host.
    struct Unmatched: Error { var reason: String }

    /// The pinned hosts in inventory order, or why there are none.
    func resolve(in inventory: Inventory) -> Result<[FleetHost], Unmatched> {
        let selector: Selector
        switch kind {
        case .host: selector = .hosts([value])
        case .class: selector = .nodeClass([value])
        case .puppetClass: selector = .puppetClass([value])
        }
        if kind == .host, !inventory.hosts.contains(where: { $0.name.lowercased() == value.lowercased() }) {
            return .failure(Unmatched(reason: "inventory '\(inventory.name)' has no host '\(value)'"))
        }
        guard let selection = try? inventory.select([selector]), !selection.hosts.isEmpty else {
            return .failure(
                Unmatched(reason: "inventory '\(inventory.name)' has no host of \(kind.rawValue) '\(value)'"))
        }
        return .success(once ? [selection.hosts[0]] : selection.hosts)
    }
}

/// A shell command with `{{NAME}}` placeholders; each becomes one shell word, quoted
/// exactly once, so no argument can add shell syntax. Placeholders may not stand
/// inside quotes (the loader refuses it), where quoting would be wrong.
public struct CommandTemplate: Sendable, Hashable, CustomStringConvertible {
    public var text: String
    public var references: [String]

    public func render(_ values: [String: String]) -> String {
        var result = text
        for name in Set(references) {
            result = result.replacingOccurrences(of: "{{\(name)}}", with: shellQuote(values[name] ?? ""))
        }
        return result
    }

    public var description: String { text }

    /// The first placeholder that stands inside quotes or after a backslash, if any.
    static func quotedPlaceholder(in text: String) -> String? {
        var single = false
        var double = false
        var escaped = false
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if escaped {
                escaped = false
            } else if !single && character == "\\" {
                escaped = true
            } else if !double && character == "'" {
                single.toggle()
            } else if !single && character == "\"" {
                double.toggle()
            } else if text[index...].hasPrefix("{{"), single || double {
                let end = text[index...].range(of: "}}")?.upperBound ?? text.endIndex
                return String(text[index..<end])
            }
            index = text.index(after: index)
        }
        return nil
    }
}

/// Names every playbook command may use besides its arguments and `let:` values.
/// `user` is the SSH login user (fabric-scripts' `env.user`); `target` is the host a
/// step is for (the host it runs on, or for a pinned step the selected host it serves).
let commandBuiltInNames = ["host", "target", "environment", "marker_path", "user"]
