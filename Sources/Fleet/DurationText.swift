import Foundation

/// Reads and writes durations such as `500ms`, `10s`, `10m`, `1h30m`.
public enum DurationText {
    /// Parses one or more `<number><unit>` parts (units `ms`, `s`, `m`, `h`); `nil` if malformed.
    public static func parse(_ text: String) -> Duration? {
        var total = Duration.zero
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let digits = rest.prefix(while: \.isASCIIDigit)
            guard !digits.isEmpty, digits.count <= 9, let value = Int64(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            let unit = rest.prefix(while: \.isLetter)
            rest = rest.dropFirst(unit.count)
            switch unit {
            case "ms": total += .milliseconds(value)
            case "s": total += .seconds(value)
            case "m": total += .seconds(value * 60)
            case "h": total += .seconds(value * 3600)
            default: return nil
            }
        }
        return total
    }

    /// Short human form: `350ms`, `4.2s`, `12m05s`, `1h02m`.
    public static func format(_ duration: Duration) -> String {
        let seconds = seconds(duration)
        if seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        if seconds < 60 { return String(format: "%.1fs", seconds) }
        let whole = Int(seconds.rounded())
        if whole < 3600 { return String(format: "%dm%02ds", whole / 60, whole % 60) }
        return String(format: "%dh%02dm", whole / 3600, (whole % 3600) / 60)
    }

    /// The duration in seconds as a `Double`.
    public static func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
