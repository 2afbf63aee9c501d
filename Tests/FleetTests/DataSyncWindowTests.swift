import Foundation
import Testing

@testable import Fleet

func utc(_ text: String) throws -> Date {
    try #require(TimeSource.parseISO8601(text), "bad test time \(text)")
}

@Suite("Data-sync window")
struct DataSyncWindowTests {
    let london = DataSyncWindow.govukDefault

    @Test func crossesMidnightInWinter() throws {
        #expect(london.crossesMidnight)
        #expect(!london.contains(try utc("2026-11-25T22:59:59Z")))
        #expect(london.contains(try utc("2026-11-25T23:00:00Z")))
        #expect(london.contains(try utc("2026-11-25T23:30:00Z")))
        #expect(london.contains(try utc("2026-11-26T00:00:00Z")))
        #expect(london.contains(try utc("2026-11-26T05:29:59Z")))
        #expect(!london.contains(try utc("2026-11-26T05:30:00Z")))
        #expect(!london.contains(try utc("2026-11-26T12:00:00Z")))
    }

    @Test func summerTimeShiftsTheWindowInUTC() throws {
        // 23:00 BST is 22:00 UTC.
        #expect(london.contains(try utc("2026-07-01T22:00:00Z")))
        #expect(!london.contains(try utc("2026-07-01T21:59:00Z")))
        #expect(!london.contains(try utc("2026-07-02T04:30:00Z"))) // 05:30 BST
        #expect(london.contains(try utc("2026-07-02T04:29:00Z")))
    }

    @Test func clocksGoForwardNight() throws {
        // 29 March 2026: 01:00 GMT becomes 02:00 BST, so the window is 5h30 of real time.
        #expect(london.contains(try utc("2026-03-28T23:00:00Z"))) // 23:00 GMT
        #expect(london.contains(try utc("2026-03-29T00:59:00Z"))) // 00:59 GMT
        #expect(london.contains(try utc("2026-03-29T01:00:00Z"))) // 02:00 BST
        #expect(london.contains(try utc("2026-03-29T04:29:00Z"))) // 05:29 BST
        #expect(!london.contains(try utc("2026-03-29T04:31:00Z"))) // 05:31 BST, though 04:31 "in UTC"
        #expect(realTimeInside(from: try utc("2026-03-28T20:00:00Z"), hours: 12) == 330)
    }

    @Test func clocksGoBackNight() throws {
        // 25 October 2026: 02:00 BST becomes 01:00 GMT, so the window is 7h30 of real time.
        #expect(!london.contains(try utc("2026-10-24T21:59:00Z"))) // 22:59 BST
        #expect(london.contains(try utc("2026-10-24T22:00:00Z"))) // 23:00 BST
        #expect(london.contains(try utc("2026-10-25T00:30:00Z"))) // 01:30 BST
        #expect(london.contains(try utc("2026-10-25T01:30:00Z"))) // 01:30 GMT, the second time
        #expect(london.contains(try utc("2026-10-25T05:29:00Z"))) // 05:29 GMT
        #expect(!london.contains(try utc("2026-10-25T05:30:00Z")))
        #expect(realTimeInside(from: try utc("2026-10-24T20:00:00Z"), hours: 12) == 450)
    }

    @Test func daytimeWindowAndOtherZones() throws {
        let office = try DataSyncWindow(start: "9:00", end: "17:30", timeZone: "America/New_York")
        #expect(!office.crossesMidnight)
        #expect(office.contains(try utc("2026-01-15T14:00:00Z"))) // 09:00 EST
        #expect(!office.contains(try utc("2026-01-15T13:59:00Z")))
        #expect(!office.contains(try utc("2026-01-15T22:30:00Z"))) // 17:30 EST
        #expect(office.description == "09:00–17:30 America/New_York")
    }

    @Test func describesNow() throws {
        #expect(
            london.describe(at: try utc("2026-11-25T23:30:00Z"))
                == "23:00–05:30 Europe/London; now 23:30 GMT is inside the window")
        let summer = london.describe(at: try utc("2026-07-01T12:00:00Z"))
        #expect(summer.hasPrefix("23:00–05:30 Europe/London; now 13:00 "))
        #expect(summer.hasSuffix(" is outside the window"))
    }

    @Test func invalidWindows() {
        #expect(throws: DataSyncWindowError.invalidTime("24:00")) {
            try DataSyncWindow(start: "24:00", end: "05:00", timeZone: "UTC")
        }
        #expect(throws: DataSyncWindowError.invalidTime("5.30")) {
            try DataSyncWindow(start: "23:00", end: "5.30", timeZone: "UTC")
        }
        #expect(throws: DataSyncWindowError.emptyWindow("05:00")) {
            try DataSyncWindow(start: "05:00", end: "05:00", timeZone: "UTC")
        }
        #expect(throws: DataSyncWindowError.self) {
            try DataSyncWindow(start: "23:00", end: "05:00", timeZone: "Mars/Olympus")
        }
    }

    @Test func timeSourceFromEnvironment() throws {
        let fixed = try TimeSource.from(environment: ["GOVUK_FAB_NOW": "2026-11-25T23:30:00Z"])
        #expect(fixed.now() == (try utc("2026-11-25T23:30:00Z")))
        let fractional = try TimeSource.from(environment: ["GOVUK_FAB_NOW": "2026-11-25T23:30:00.250+01:00"])
        #expect(fractional.now().timeIntervalSince(try utc("2026-11-25T22:30:00Z")) == 0.25)
        let system = try TimeSource.from(environment: [:])
        #expect(abs(system.now().timeIntervalSinceNow) < 60)
        #expect(throws: TimeSourceError(text: "tonight")) {
            try TimeSource.from(environment: ["GOVUK_FAB_NOW": "tonight"])
        }
    }

    /// Minutes inside the window, sampled each minute over `hours` from `start`.
    func realTimeInside(from start: Date, hours: Int) -> Int {
        (0..<(hours * 60)).filter { london.contains(start.addingTimeInterval(Double($0) * 60)) }.count
    }
}
