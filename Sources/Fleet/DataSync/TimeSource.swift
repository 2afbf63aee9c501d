import Foundation

/// The current time, injectable so tests and `GOVUK_FAB_NOW` can fix it.
public struct TimeSource: Sendable {
    /// Returns the current time.
    public let now: @Sendable () -> Date

    /// Creates a source from a closure.
    public init(now: @escaping @Sendable () -> Date) {
        self.now = now
    }

    /// The system clock.
    public static let system = TimeSource { Date() }

    /// Always `date`.
    public static func fixed(_ date: Date) -> TimeSource {
        TimeSource { date }
    }

    /// Name of the environment variable that fixes the time, e.g. `2026-11-25T23:30:00Z`.
    public static let environmentVariable = "GOVUK_FAB_NOW"

    /// ``fixed(_:)`` at `$GOVUK_FAB_NOW` if set, else ``system``.
    public static func from(environment: [String: String]) throws(TimeSourceError) -> TimeSource {
        guard let text = environment[environmentVariable] else { return .system }
        guard let date = parseISO8601(text) else { throw TimeSourceError(text: text) }
        return .fixed(date)
    }

    /// Parses ISO 8601 with an offset or `Z`, with or without fractional seconds.
    public static func parseISO8601(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)
    }
}

/// `GOVUK_FAB_NOW` was set to something that is not an ISO 8601 time.
public struct TimeSourceError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The value given.
    public var text: String
    public var description: String {
        "\(TimeSource.environmentVariable)='\(text)' is not an ISO 8601 time such as 2026-11-25T23:30:00Z"
    }
}
