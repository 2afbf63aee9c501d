/// Turns a request target into the endpoint it is counted under, so that
/// `/api/content/123`, `/api/content/456` land in one row.
///
/// Given patterns are tried first, in order; the first that matches names
/// the endpoint. A pattern is a path whose segments are literal text, `*`
/// (any one segment) or a final `**` (any rest), e.g.
/// `/government/publications/*` or `/api/search/**`. Otherwise the query
/// string is dropped and each segment that looks like an identifier collapses:
/// digits → `{n}`, a UUID → `{uuid}`, 16+ hex digits → `{hash}`, and a long
/// token mixing letters and digits → `{id}`.
public struct EndpointNormaliser: Sendable {
    public struct Pattern: Sendable, Equatable {
        public let text: String
        let segments: [Substring]

        /// - Throws: `ReportError.badPattern` unless it starts with `/` and
        ///   `**` only ends it.
        public init(_ text: String) throws(ReportError) {
            guard text.hasPrefix("/") else { throw .badPattern(text, "must start with /") }
            let segments = text.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
            if let doubleStar = segments.firstIndex(of: "**"), doubleStar != segments.count - 1 {
                throw .badPattern(text, "** may only be the last segment")
            }
            self.text = text
            self.segments = segments
        }

        func matches(_ path: [Substring]) -> Bool {
            var index = 0
            for segment in segments {
                if segment == "**" { return index < path.count }
                guard index < path.count else { return false }
                if segment != "*" && segment != path[index] { return false }
                index += 1
            }
            return index == path.count
        }
    }

    public var patterns: [Pattern]

    public init(patterns: [Pattern] = []) {
        self.patterns = patterns
    }

    public func endpoint(method: String, target: String) -> String {
        "\(method) \(normalisedPath(target))"
    }

    public func normalisedPath(_ target: String) -> String {
        var path = Substring(target)
        // An absolute-form target (proxy requests) keeps only its path.
        if path.hasPrefix("http://") || path.hasPrefix("https://") {
            let afterScheme = path[path.index(path.firstIndex(of: ":")!, offsetBy: 3)...]
            path = afterScheme.firstIndex(of: "/").map { afterScheme[$0...] } ?? "/"
        }
        if let query = path.firstIndex(where: { $0 == "?" || $0 == "#" }) { path = path[..<query] }
        guard path.hasPrefix("/") else { return path.isEmpty ? "/" : String(path.prefix(64)) }
        let segments = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        for pattern in patterns where pattern.matches(segments) { return pattern.text }
        return "/" + segments.map { Self.collapse($0) }.joined(separator: "/")
    }

    static func collapse(_ segment: Substring) -> Substring {
        guard !segment.isEmpty else { return segment }
        let utf8 = segment.utf8
        var digits = 0
        var hex = 0
        var letters = 0
        var dashes = 0
        var other = 0
        for byte in utf8 {
            switch byte {
            case 0x30...0x39:
                digits += 1
                hex += 1
            case 0x61...0x66, 0x41...0x46:
                hex += 1
                letters += 1
            case 0x67...0x7A, 0x47...0x5A: letters += 1
            case 0x2D: dashes += 1
            case 0x5F: other += 1
            default: other += 100
            }
        }
        let count = utf8.count
        if digits == count { return "{n}" }
        if count == 36, dashes == 4, hex == 32 { return "{uuid}" }
        if count >= 16, hex == count { return "{hash}" }
        // Slugs are words joined by dashes ("vat-rates-2024"): keep them.
        if count >= 20, digits > 0, letters > 0, dashes == 0, other < 100 { return "{id}" }
        if count > 200 { return "{long}" }
        return segment
    }
}
