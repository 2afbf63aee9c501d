import Foundation

/// A `Name: RE` header rule (`--http-allow-header`, `--http-disallow-header`).
public struct HeaderPattern: Sendable {
    public var name: String
    public var pattern: RegexPattern
}

/// A compiled regular expression with its source text.
///
/// Foundation's `NSRegularExpression` (ICU syntax) stands in for Go's RE2;
/// ordinary patterns behave the same, see docs/goreplay.md for differences.
public struct RegexPattern: @unchecked Sendable {
    // NSRegularExpression is immutable and documented thread-safe.
    public let source: String
    let regex: NSRegularExpression

    public init(_ source: String) throws(ConfigurationError) {
        self.source = source
        do {
            regex = try NSRegularExpression(pattern: source)
        } catch {
            throw .invalidRegex(source)
        }
    }

    public func matches(_ text: String) -> Bool {
        regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }

    /// Replaces every match, expanding groups in `template` as Go's
    /// `Regexp.Expand` does: `$1`, `${1}`, `$name`, `${name}`, `$$` for a
    /// dollar. `$1x` names group "1x" (Go's rule); unknown groups expand
    /// to nothing.
    public func replacingMatches(in text: String, with template: String) -> String {
        let whole = text as NSString
        var result = ""
        var copiedUpTo = 0
        for match in regex.matches(in: text, range: NSRange(location: 0, length: whole.length)) {
            result += whole.substring(with: NSRange(location: copiedUpTo, length: match.range.location - copiedUpTo))
            result += expand(template, match: match, in: whole)
            copiedUpTo = match.range.location + match.range.length
        }
        result += whole.substring(from: copiedUpTo)
        return result
    }

    func expand(_ template: String, match: NSTextCheckingResult, in text: NSString) -> String {
        func group(_ name: Substring) -> String {
            let range: NSRange
            if let number = Int(name) {
                guard number >= 0, number < match.numberOfRanges else { return "" }
                range = match.range(at: number)
            } else {
                // Only names the pattern defines: Foundation may trap on others.
                guard source.contains("(?<\(name)>") else { return "" }
                range = match.range(withName: String(name))
            }
            return range.location == NSNotFound ? "" : text.substring(with: range)
        }
        func isNameCharacter(_ character: Character) -> Bool {
            character == "_" || (character.isASCII && (character.isLetter || character.isNumber))
        }
        var result = ""
        var rest = Substring(template)
        while let dollar = rest.firstIndex(of: "$") {
            result += rest[..<dollar]
            rest = rest[rest.index(after: dollar)...]
            if rest.first == "$" {
                result += "$"
                rest = rest.dropFirst()
            } else if rest.first == "{", let close = rest.firstIndex(of: "}"),
                case let name = rest[rest.index(after: rest.startIndex)..<close], !name.isEmpty,
                name.allSatisfy(isNameCharacter)
            {
                result += group(name)
                rest = rest[rest.index(after: close)...]
            } else {
                let name = rest.prefix(while: isNameCharacter)
                if name.isEmpty {
                    result += "$" // Go keeps a lone or malformed `$` as is.
                } else {
                    result += group(name)
                    rest = rest.dropFirst(name.count)
                }
            }
        }
        return result + rest
    }
}

/// A configuration value that cannot be used.
public enum ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The regular expression does not compile.
    case invalidRegex(String)
    /// A rule lacks its separator, e.g. `Name: value` without `:`.
    case malformedRule(String, expected: String)

    public var description: String {
        switch self {
        case .invalidRegex(let source): "invalid regular expression \"\(source)\""
        case .malformedRule(let rule, let expected): "malformed rule \"\(rule)\" (expected \(expected))"
        }
    }
}

/// Filters and rewrites for request payloads, applied in GoReplay's order:
/// method, set-header, set-param, allow-url, disallow-url, allow-header,
/// disallow-header, basic-auth, header-limiter, param-limiter, rewrite-url,
/// rewrite-header.
public struct HTTPModifierConfig: Sendable {
    public var allowMethods: [String] = []
    public var setHeaders: [(name: String, value: String)] = []
    public var setParams: [(name: String, value: String)] = []
    public var allowURLs: [RegexPattern] = []
    public var disallowURLs: [RegexPattern] = []
    public var allowHeaders: [HeaderPattern] = []
    public var disallowHeaders: [HeaderPattern] = []
    public var basicAuthFilters: [RegexPattern] = []
    public var headerLimiters: [(name: String, percent: Int)] = []
    public var paramLimiters: [(name: String, percent: Int)] = []
    public var rewriteURLs: [(pattern: RegexPattern, template: String)] = []
    public var rewriteHeaders: [(name: String, pattern: RegexPattern, template: String)] = []

    public init() {}

    public var isEmpty: Bool {
        allowMethods.isEmpty && setHeaders.isEmpty && setParams.isEmpty && allowURLs.isEmpty
            && disallowURLs.isEmpty && allowHeaders.isEmpty && disallowHeaders.isEmpty
            && basicAuthFilters.isEmpty && headerLimiters.isEmpty && paramLimiters.isEmpty
            && rewriteURLs.isEmpty && rewriteHeaders.isEmpty
    }

    /// Whether a `--http-set-header Host: …` rule exists (it implies
    /// `--http-original-host`, as in GoReplay).
    public var setsHost: Bool { setHeaders.contains { ASCII.equalsIgnoringCase($0.name.utf8, "Host".utf8) } }

    // MARK: rule parsing (flag values)

    /// Splits `Name: value` at the first colon, trimming the value.
    public static func splitHeaderRule(_ rule: String) throws(ConfigurationError) -> (String, String) {
        guard let colon = rule.firstIndex(of: ":"), colon != rule.startIndex else {
            throw .malformedRule(rule, expected: "Name: value")
        }
        return (String(rule[..<colon]).trimmingSpaces(), String(rule[rule.index(after: colon)...]).trimmingSpaces())
    }

    public static func headerPattern(_ rule: String) throws(ConfigurationError) -> HeaderPattern {
        let (name, pattern) = try splitHeaderRule(rule)
        return HeaderPattern(name: name, pattern: try RegexPattern(pattern))
    }

    /// `SRC_RE:TARGET`, split at the first colon.
    public static func rewriteURLRule(_ rule: String) throws(ConfigurationError) -> (RegexPattern, String) {
        guard let colon = rule.firstIndex(of: ":") else { throw .malformedRule(rule, expected: "REGEX:TARGET") }
        return (try RegexPattern(String(rule[..<colon])), String(rule[rule.index(after: colon)...]))
    }

    /// `Name: RE,TARGET`.
    public static func rewriteHeaderRule(_ rule: String) throws(ConfigurationError) -> (String, RegexPattern, String) {
        let (name, rest) = try splitHeaderRule(rule)
        guard let comma = rest.firstIndex(of: ",") else { throw .malformedRule(rule, expected: "Name: REGEX,TARGET") }
        return (name, try RegexPattern(String(rest[..<comma])), String(rest[rest.index(after: comma)...]))
    }

    /// `name=value`.
    public static func paramRule(_ rule: String) throws(ConfigurationError) -> (String, String) {
        guard let equals = rule.firstIndex(of: "="), equals != rule.startIndex else {
            throw .malformedRule(rule, expected: "name=value")
        }
        return (String(rule[..<equals]), String(rule[rule.index(after: equals)...]))
    }

    /// `Name: 10%` (or `Name: 1/4`, GoReplay's deprecated fraction form).
    public static func limiterRule(_ rule: String, separator: Character) throws(ConfigurationError) -> (String, Int) {
        guard let cut = rule.firstIndex(of: separator), cut != rule.startIndex else {
            throw .malformedRule(rule, expected: separator == ":" ? "Name: N%" : "name: N%")
        }
        let name = String(rule[..<cut]).trimmingSpaces()
        let value = String(rule[rule.index(after: cut)...]).trimmingSpaces()
        if value.hasSuffix("%"), let percent = Int(value.dropLast()), (0...100).contains(percent) {
            return (name, percent)
        }
        let parts = value.split(separator: "/")
        if parts.count == 2, let numerator = Int(parts[0]), let denominator = Int(parts[1]), denominator > 0,
            (0...denominator).contains(numerator)
        {
            let (scaled, overflow) = numerator.multipliedReportingOverflow(by: 100)
            return (
                name,
                overflow ? Int((Double(numerator) / Double(denominator) * 100).rounded(.down)) : scaled / denominator
            )
        }
        throw .malformedRule(rule, expected: "Name: N%")
    }
}

/// Applies an `HTTPModifierConfig` to request payloads.
public struct HTTPModifier: Sendable {
    public let config: HTTPModifierConfig

    public init(_ config: HTTPModifierConfig) {
        self.config = config
    }

    /// The rewritten payload, or nil when a filter drops the request.
    /// Payloads that are not HTTP requests pass only when no rule is set.
    public func apply(to payload: [UInt8]) -> [UInt8]? {
        if config.isEmpty { return payload }
        guard var request = HTTPRequest(parsing: payload) else { return nil }
        let c = config
        if !c.allowMethods.isEmpty && !c.allowMethods.contains(request.method) { return nil }
        for (name, value) in c.setHeaders { request.setHeader(name, value) }
        for (name, value) in c.setParams { request.setQueryParameter(name, value) }
        if !c.allowURLs.isEmpty && !c.allowURLs.contains(where: { $0.matches(request.target) }) { return nil }
        if c.disallowURLs.contains(where: { $0.matches(request.target) }) { return nil }
        for rule in c.allowHeaders {
            // An empty or missing value never passes (GoReplay 1.3).
            guard let value = request.header(rule.name), !value.isEmpty, rule.pattern.matches(value) else { return nil }
        }
        for rule in c.disallowHeaders {
            if let value = request.header(rule.name), rule.pattern.matches(value) { return nil }
        }
        if !c.basicAuthFilters.isEmpty, let authorization = request.header("Authorization"),
            authorization.hasPrefix("Basic ")
        {
            let credentials =
                Data(base64Encoded: String(authorization.dropFirst(6)).trimmingSpaces())
                .map { String(decoding: $0, as: UTF8.self) } ?? ""
            // Every filter must match (GoReplay checks each in turn).
            if !c.basicAuthFilters.allSatisfy({ $0.matches(credentials) }) { return nil }
        }
        for (name, percent) in c.headerLimiters {
            if let value = request.header(name), Int(fnv32a(value) % 100) >= percent { return nil }
        }
        for (name, percent) in c.paramLimiters {
            if let value = request.queryParameter(name), Int(fnv32a(value) % 100) >= percent { return nil }
        }
        if let rule = c.rewriteURLs.first(where: { $0.pattern.matches(request.target) }) {
            request.target = rule.pattern.replacingMatches(in: request.target, with: rule.template)
        }
        for rule in c.rewriteHeaders {
            for index in request.fields.indices
            where ASCII.equalsIgnoringCase(request.fields[index].name.utf8, rule.name.utf8) {
                let value = request.fields[index].value
                if rule.pattern.matches(value) {
                    request.setValue(rule.pattern.replacingMatches(in: value, with: rule.template), at: index)
                }
            }
        }
        return request.serialized()
    }
}

/// 32-bit FNV-1a, as GoReplay's consistent header/param sampling uses.
func fnv32a(_ text: String) -> UInt32 {
    var hash: UInt32 = 2_166_136_261
    for byte in text.utf8 {
        hash ^= UInt32(byte)
        hash = hash &* 16_777_619
    }
    return hash
}

/// Remembers ids of dropped requests so their responses are dropped too.
/// Bounded: the oldest ids are forgotten first.
public struct DroppedIDs: Sendable {
    private var members: Set<String> = []
    private var order: [String?]
    private var next = 0

    public init(capacity: Int = 100_000) {
        order = Array(repeating: nil, count: max(1, capacity))
    }

    public mutating func insert(_ id: String) {
        guard members.insert(id).inserted else { return }
        if let old = order[next] { members.remove(old) }
        order[next] = id
        next = (next + 1) % order.count
    }

    public func contains(_ id: String) -> Bool { members.contains(id) }
}
