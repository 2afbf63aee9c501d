import Replay

/// A command line that cannot be used; printed as one line, exit status 2.
public enum UsageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No such flag; `suggestion` is the closest known one.
    case unknownFlag(String, suggestion: String?)
    /// A flag that takes a value came last.
    case missingValue(String)
    /// The value does not parse.
    case invalidValue(flag: String, value: String, reason: String)
    /// A bool flag was given a value other than true/false.
    case invalidBool(flag: String, value: String)
    /// A word that is not a flag.
    case unexpectedArgument(String)
    /// Fewer than one input or one output.
    case missingInputOrOutput

    public var description: String {
        switch self {
        case .unknownFlag(let flag, let suggestion):
            "unknown flag \(flag)" + (suggestion.map { " (did you mean --\($0)?)" } ?? "")
        case .missingValue(let flag): "flag needs an argument: \(flag)"
        case .invalidValue(let flag, let value, let reason): "invalid value \"\(value)\" for flag \(flag): \(reason)"
        case .invalidBool(let flag, let value): "invalid boolean value \"\(value)\" for flag \(flag)"
        case .unexpectedArgument(let word): "unexpected argument \"\(word)\" (flags start with - or --)"
        case .missingInputOrOutput: "required at least 1 input and 1 output (see --help)"
        }
    }
}

/// What parsing produced.
public enum ParsedCommandLine: Sendable {
    case run(GoReplayOptions)
    case help
    /// `-version` (GoReplay's spelling; `--version` too).
    case version
    /// `--generate-completion-script bash|zsh|fish`.
    case completion(CompletionShell)
}

/// One flag: its spelling, whether it takes a value, help, and how it sets options.
struct FlagSpec: Sendable {
    enum Kind: Sendable { case bool, value }
    let name: String
    let kind: Kind
    let valueName: String
    let help: String
    let section: String
    /// Old spelling kept for compatibility: not listed in help under its own entry.
    let aliasOf: String?
    let apply: @Sendable (inout GoReplayOptions, String) throws -> Void
}

/// Go `flag` package semantics: `-flag` or `--flag`, `=value` or a separate
/// value, bool flags without a value, `--` ends flags.
public enum GoFlagParser {
    public static func parse<C: Collection>(_ arguments: C) throws(UsageError) -> ParsedCommandLine
    where C.Element == String {
        var options = GoReplayOptions()
        let table = FlagTable.byName
        var index = arguments.startIndex
        var lastBoolFlag: FlagSpec?
        while index < arguments.endIndex {
            let argument = arguments[index]
            index = arguments.index(after: index)
            if argument == "--" { break }
            guard argument.hasPrefix("-"), argument.count > 1 else {
                // `--split-output true` (as GoReplay's docs write it): Go would
                // stop parsing here; we apply the value to the bool flag.
                if let flag = lastBoolFlag, (try? flag.apply(&options, argument)) != nil {
                    lastBoolFlag = nil
                    continue
                }
                throw .unexpectedArgument(argument)
            }
            lastBoolFlag = nil
            var body = argument.dropFirst()
            if body.hasPrefix("-") { body = body.dropFirst() }
            var name = String(body)
            var inlineValue: String?
            if let equals = body.firstIndex(of: "=") {
                name = String(body[..<equals])
                inlineValue = String(body[body.index(after: equals)...])
            }
            if ["h", "help"].contains(name) { return .help }
            if name == "version" { return .version }
            if name == GoReplayCompletion.flag {
                guard let shell = inlineValue ?? (index < arguments.endIndex ? arguments[index] : nil) else {
                    throw .missingValue("--\(name)")
                }
                guard let parsed = CompletionShell(rawValue: shell) else {
                    throw .invalidValue(flag: "--\(name)", value: shell, reason: "expected bash, zsh or fish")
                }
                return .completion(parsed)
            }
            guard let spec = table[name] else {
                throw .unknownFlag("--\(name)", suggestion: suggestion(for: name))
            }
            switch spec.kind {
            case .bool:
                let value = inlineValue ?? "true"
                try apply(spec, value: value, to: &options, spelled: "--\(name)")
                if inlineValue == nil { lastBoolFlag = spec }
            case .value:
                var value = inlineValue
                if value == nil {
                    guard index < arguments.endIndex else { throw .missingValue("--\(name)") }
                    value = arguments[index]
                    index = arguments.index(after: index)
                }
                try apply(spec, value: value ?? "", to: &options, spelled: "--\(name)")
            }
        }
        if index < arguments.endIndex {
            throw .unexpectedArgument(arguments[index])
        }
        return .run(options)
    }

    private static func apply(_ spec: FlagSpec, value: String, to options: inout GoReplayOptions, spelled: String)
        throws(UsageError)
    {
        do {
            try spec.apply(&options, value)
        } catch let error as FlagValueError {
            switch error {
            case .bool: throw .invalidBool(flag: spelled, value: value)
            case .reason(let reason): throw .invalidValue(flag: spelled, value: value, reason: reason)
            }
        } catch let error as ConfigurationError {
            throw .invalidValue(flag: spelled, value: value, reason: error.description)
        } catch {
            throw .invalidValue(flag: spelled, value: value, reason: "\(error)")
        }
    }

    /// The closest flag name by edit distance, if close enough to be a typo.
    static func suggestion(for name: String) -> String? {
        var best: (String, Int)?
        for candidate in FlagTable.byName.keys {
            let distance = editDistance(name, candidate)
            if distance <= max(2, name.count / 4), distance < (best?.1 ?? Int.max) { best = (candidate, distance) }
        }
        if let best { return FlagTable.byName[best.0]?.aliasOf ?? best.0 }
        return FlagTable.byName.keys.filter { $0.hasPrefix(name) && name.count >= 3 }.sorted().first
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8)
        let b = Array(b.utf8)
        if a.isEmpty { return b.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in stride(from: 1, through: b.count, by: 1) {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    /// `goreplay --help`.
    public static var usage: String {
        var lines = [
            "Usage: goreplay [flags]",
            "       goreplay report [options] FILE...   (compare original and replayed responses; report --help)",
            "",
            "Replays HTTP traffic recorded by GoReplay (.gor files) or captured live.",
            "Flags take one or two dashes; values as --flag=value or --flag value.",
            "Flags marked (repeatable) may be given several times. Addresses of inputs and",
            "outputs take a rate limit suffix: ADDR|N (N per second) or ADDR|N% (sampling;",
            "on --input-file a speed factor: \"requests.gor|200%\" replays twice as fast).",
            "Sizes: 1024, 64kb, 256mb, 256m, 1g. Durations: 500ms, 5s, 1m30s.",
            "-version prints the version; --generate-completion-script bash|zsh|fish a completion script.",
        ]
        var section = ""
        for spec in FlagTable.all where spec.aliasOf == nil {
            if spec.section != section {
                section = spec.section
                lines.append("")
                lines.append("\(section):")
            }
            let left = spec.kind == .bool ? "  --\(spec.name)" : "  --\(spec.name) \(spec.valueName)"
            let padded =
                left.count < 40
                ? left + String(repeating: " ", count: 40 - left.count)
                : left + "\n" + String(repeating: " ", count: 40)
            lines.append(padded + spec.help)
        }
        lines.append("")
        lines.append("Old GoReplay 0.16 spellings accepted:")
        for spec in FlagTable.all where spec.aliasOf != nil {
            lines.append("  --\(spec.name) → --\(spec.aliasOf ?? "")")
        }
        lines.append("")
        lines.append("Exit status: 0 at the end of input or --exit-after, 1 on SIGINT/SIGTERM or a")
        lines.append("runtime error, 2 on a bad command line.")
        return lines.joined(separator: "\n")
    }
}

/// A flag value that does not parse (mapped to `UsageError`).
enum FlagValueError: Error {
    case bool
    case reason(String)
}

/// Value parsers shared by the flag table.
public enum FlagValues {
    public static func bool(_ text: String) throws -> Bool {
        switch text.lowercased() {
        case "1", "t", "true": return true
        case "0", "f", "false": return false
        default: throw FlagValueError.bool
        }
    }

    /// A whole number in `minimum...maximum` (the default maximum keeps
    /// sums and products of flag values far from overflow).
    public static func int(_ text: String, minimum: Int = 0, maximum: Int = 1 << 40) throws -> Int {
        guard let value = Int(text), value >= minimum, value <= maximum else {
            throw FlagValueError.reason("expected a whole number from \(minimum) to \(maximum)")
        }
        return value
    }

    /// Longest duration accepted: Go's `time.Duration` tops out at ~292 years;
    /// a year is plenty and far from `Int64` overflow.
    static let maximumDurationNanoseconds = 365.0 * 24 * 3600 * 1e9

    /// Go durations: `300ms`, `1.5s`, `1m30s`, `2h`, `0`. A bare number is seconds.
    public static func duration(_ text: String) throws -> Duration {
        let reason = FlagValueError.reason("expected a duration such as 500ms, 5s or 1m30s")
        let tooLong = FlagValueError.reason("expected a duration from 0 to 8760h (one year)")
        if text == "0" { return .zero }
        if let seconds = Double(text) {
            guard seconds.isFinite, seconds >= 0 else { throw reason }
            guard seconds * 1e9 <= maximumDurationNanoseconds else { throw tooLong }
            return .nanoseconds(Int64(seconds * 1e9))
        }
        var rest = Substring(text)
        var total = 0.0
        guard !rest.isEmpty else { throw reason }
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard let value = Double(number) else { throw reason }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix { !($0.isNumber || $0 == ".") }
            rest = rest.dropFirst(unit.count)
            let scale: Double
            switch unit {
            case "ns": scale = 1
            case "us", "µs": scale = 1e3
            case "ms": scale = 1e6
            case "s": scale = 1e9
            case "m": scale = 60e9
            case "h": scale = 3600e9
            default: throw reason
            }
            total += value * scale
            guard total.isFinite, total <= maximumDurationNanoseconds else { throw tooLong }
        }
        return .nanoseconds(Int64(total))
    }

    /// Sizes: bytes, or `k`/`kb`, `m`/`mb`, `g`/`gb`, `t`/`tb` (powers of 1024,
    /// any case). GoReplay itself rejects `256m`; we accept it.
    public static func size(_ text: String, maximum: Int64 = 1 << 50) throws -> Int64 {
        let lower = text.lowercased().trimmingCharacters(in: " ")
        let digits = lower.prefix { $0.isNumber || $0 == "." }
        var unit = lower.dropFirst(digits.count)
        if unit.hasSuffix("b") { unit = unit.dropLast() }
        if unit.hasSuffix("i") { unit = unit.dropLast() }
        let scale: Double
        switch unit {
        case "": scale = 1
        case "k": scale = 1024
        case "m": scale = 1024 * 1024
        case "g": scale = 1024 * 1024 * 1024
        case "t": scale = 1024 * 1024 * 1024 * 1024
        default: throw FlagValueError.reason("expected a size such as 64kb, 256m or 1g")
        }
        guard let number = Double(digits), number >= 0, number.isFinite else {
            throw FlagValueError.reason("expected a size such as 64kb, 256m or 1g")
        }
        // Default 1 PiB: more than any buffer or file limit needs, far from overflow.
        guard number * scale <= Double(maximum) else {
            throw FlagValueError.reason("expected a size from 0 to \(maximum) bytes")
        }
        return Int64(number * scale)
    }

    public static func address(_ text: String) throws -> LimitedAddress {
        guard let address = LimitedAddress(parsing: text), !address.address.isEmpty else {
            throw FlagValueError.reason("expected ADDRESS, ADDRESS|N or ADDRESS|N%")
        }
        return address
    }
}

extension String {
    fileprivate func trimmingCharacters(in character: Character) -> String {
        var text = Substring(self)
        while text.first == character { text.removeFirst() }
        while text.last == character { text.removeLast() }
        return String(text)
    }
}
