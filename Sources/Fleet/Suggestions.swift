/// Finds names close to a mistyped one, for "did you mean" hints in errors.
public enum NameSuggestions {
    /// Returns up to `limit` candidates near `name`, best first.
    ///
    /// A candidate qualifies when its case-insensitive edit distance to `name` is small for
    /// its length, or when one contains the other and both have three letters or more (so `gor`
    /// suggests `router::gor`).
    public static func near(
        _ name: String, in candidates: some Sequence<String>, limit: Int = 5
    ) -> [String] {
        let wanted = name.lowercased()
        guard !wanted.isEmpty else { return [] }
        let threshold = max(2, wanted.count / 3)
        var scored: [(score: Int, name: String)] = []
        var seen = Set<String>()
        for candidate in candidates where seen.insert(candidate).inserted {
            let lowered = candidate.lowercased()
            if lowered == wanted { continue }
            let distance = editDistance(wanted, lowered)
            if distance <= threshold {
                scored.append((distance, candidate))
            } else if min(wanted.count, lowered.count) >= 3, lowered.contains(wanted) || wanted.contains(lowered) {
                // Three letters at least: `do` inside `nagios.schedule_downtime` is chance, not a typo.
                // Containment ranks after every close spelling.
                scored.append((threshold + 1 + abs(lowered.count - wanted.count), candidate))
            }
        }
        return
            scored
            .sorted { ($0.score, $0.name) < ($1.score, $1.name) }
            .prefix(limit)
            .map(\.name)
    }

    /// Levenshtein distance between two strings, by Unicode scalar.
    public static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.unicodeScalars)
        let b = Array(b.unicodeScalars)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }

    /// Formats suggestions as a trailing hint: ` (did you mean 'a' or 'b'?)`, or "" if none.
    public static func hint(_ suggestions: [String]) -> String {
        guard !suggestions.isEmpty else { return "" }
        let quoted = suggestions.map { "'\($0)'" }
        let list =
            quoted.count == 1
            ? quoted[0]
            : quoted.dropLast().joined(separator: ", ") + " or " + quoted[quoted.count - 1]
        return " (did you mean \(list)?)"
    }
}
