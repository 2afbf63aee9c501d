import Foundation

/// A wall-clock time of day, minute precision.
public struct TimeOfDay: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// 0–23.
    public let hour: Int
    /// 0–59.
    public let minute: Int

    /// Creates a time; `nil` if out of range.
    public init?(hour: Int, minute: Int) {
        guard (0...23).contains(hour), (0...59).contains(minute) else { return nil }
        self.hour = hour
        self.minute = minute
    }

    /// Parses `H:MM` or `HH:MM` (24-hour clock).
    public init?(parsing text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, (1...2).contains(parts[0].count), parts[1].count == 2,
            parts.allSatisfy({ $0.allSatisfy(\.isASCIIDigit) }),
            let hour = Int(parts[0]), let minute = Int(parts[1])
        else { return nil }
        self.init(hour: hour, minute: minute)
    }

    /// Minutes since midnight.
    public var minutesSinceMidnight: Int { hour * 60 + minute }

    public static func < (lhs: TimeOfDay, rhs: TimeOfDay) -> Bool {
        lhs.minutesSinceMidnight < rhs.minutesSinceMidnight
    }

    public var description: String { String(format: "%02d:%02d", hour, minute) }
}

/// Why a data-sync window could not be made.
public enum DataSyncWindowError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A start or end that is not `HH:MM`.
    case invalidTime(String)
    /// A time zone identifier that the system does not know; carries near identifiers.
    case unknownTimeZone(String, suggestions: [String])
    /// Start and end are the same, so the window would be empty (or everything).
    case emptyWindow(String)

    public var description: String {
        switch self {
        case .invalidTime(let text):
            return "'\(text)' is not a time of day; use HH:MM on the 24-hour clock, e.g. 23:00"
        case .unknownTimeZone(let identifier, let suggestions):
            return "unknown time zone '\(identifier)'" + NameSuggestions.hint(suggestions)
                + "; use an IANA name such as Europe/London or UTC"
        case .emptyWindow(let time):
            return "start and end are both \(time); a window needs two different times"
        }
    }
}

/// The nightly window when data syncs run and goreplay is meant to be stopped.
///
/// Times are wall-clock times in ``timeZone``, compared as the hosts' cron would: a window
/// from 23:00 to 05:30 contains 23:00 up to (not including) 05:30 the next morning. On a
/// night when clocks change, the window is correspondingly an hour longer or shorter.
public struct DataSyncWindow: Sendable, Hashable, CustomStringConvertible {
    /// First minute inside the window.
    public let start: TimeOfDay
    /// First minute after the window.
    public let end: TimeOfDay
    /// Zone the times are read in.
    public let timeZone: TimeZone
    /// The zone's name as configured (Foundation may report `UTC` as `GMT`).
    public let timeZoneName: String

    /// GOV.UK's documented sync window, 23:00–05:30 Europe/London.
    public static let govukDefault = DataSyncWindow(
        start: TimeOfDay(hour: 23, minute: 0)!, end: TimeOfDay(hour: 5, minute: 30)!,
        timeZone: TimeZone(identifier: "Europe/London") ?? TimeZone(secondsFromGMT: 0)!)

    /// Creates a window from parsed parts. `start` must differ from `end`.
    public init(start: TimeOfDay, end: TimeOfDay, timeZone: TimeZone, timeZoneName: String? = nil) {
        self.start = start
        self.end = end
        self.timeZone = timeZone
        self.timeZoneName = timeZoneName ?? timeZone.identifier
    }

    /// Creates a window from text, e.g. `("23:00", "05:30", "Europe/London")`.
    public init(start: String, end: String, timeZone identifier: String) throws(DataSyncWindowError) {
        guard let startTime = TimeOfDay(parsing: start) else { throw .invalidTime(start) }
        guard let endTime = TimeOfDay(parsing: end) else { throw .invalidTime(end) }
        guard startTime != endTime else { throw .emptyWindow(start) }
        guard let zone = TimeZone(identifier: identifier) else {
            throw .unknownTimeZone(
                identifier,
                suggestions: NameSuggestions.near(
                    identifier, in: TimeZone.knownTimeZoneIdentifiers, limit: 3))
        }
        self.init(start: startTime, end: endTime, timeZone: zone, timeZoneName: identifier)
    }

    /// True if the window wraps past midnight (start later than end).
    public var crossesMidnight: Bool { start > end }

    /// Whether `date` falls inside the window.
    public func contains(_ date: Date) -> Bool {
        let seconds = secondsSinceLocalMidnight(date)
        let startSeconds = start.minutesSinceMidnight * 60
        let endSeconds = end.minutesSinceMidnight * 60
        if crossesMidnight {
            return seconds >= startSeconds || seconds < endSeconds
        }
        return seconds >= startSeconds && seconds < endSeconds
    }

    /// `23:00–05:30 Europe/London; now 23:30 GMT is inside the window`.
    public func describe(at date: Date) -> String {
        let seconds = secondsSinceLocalMidnight(date)
        let now = String(format: "%02d:%02d", seconds / 3600, (seconds % 3600) / 60)
        let zoneName = timeZone.abbreviation(for: date) ?? timeZoneName
        let position = contains(date) ? "inside" : "outside"
        return "\(self); now \(now) \(zoneName) is \(position) the window"
    }

    /// `23:00–05:30 Europe/London`.
    public var description: String { "\(start)–\(end) \(timeZoneName)" }

    private func secondsSinceLocalMidnight(_ date: Date) -> Int {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let parts = calendar.dateComponents([.hour, .minute, .second], from: date)
        return (parts.hour ?? 0) * 3600 + (parts.minute ?? 0) * 60 + (parts.second ?? 0)
    }
}
