import Fleet
import Foundation
import Testing

@testable import FleetTasks

/// A playbook nested deeply enough to overflow Yams' recursive composer is a located error.
@Suite("Deep playbooks")
struct PlaybookNestingTests {
    @Test func tenKilobytesOfBracketsIsALocatedErrorNotACrash() {
        let text = "name: deep\nsteps: " + String(repeating: "[", count: 4_700) + "\n"
        do {
            _ = try PlaybookLoader.parse(text, file: "playbooks/deep.yml")
            Issue.record("a 4,700-level playbook loaded")
        } catch {
            #expect("\(error)".hasPrefix("playbooks/deep.yml:2:"))
            #expect("\(error)".contains("nested more than"))
        }
    }

    @Test func everyShippedPlaybookIsWithinTheLimit() throws {
        let directory = shippedPlaybooksDirectory()
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".yml") }
        #expect(!files.isEmpty)
        for file in files {
            let text = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
            #expect(YAMLNestingLimit.firstViolation(in: text) == nil, "\(file)")
        }
    }

    @Test("a playbook directory or file that others could write is refused with the fix")
    func writablePlaybooksAreRefused() throws {
        let directory = NSTemporaryDirectory() + "govuk-fab-playbooks-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/x.status.yml"
        try "name: x.status\nsummary: s\nchanges: false\nsteps:\n  - run_read: uptime\n"
            .write(toFile: file, atomically: false, encoding: .utf8)
        chmod(directory, 0o755)
        chmod(file, 0o644)
        #expect(try PlaybookLoader.loadDirectory(directory).map(\.name) == ["x.status"])
        chmod(file, 0o666)
        #expect(throws: PlaybookError.self) { try PlaybookLoader.loadDirectory(directory) }
        chmod(file, 0o644)
        chmod(directory, 0o777)
        do {
            _ = try PlaybookLoader.loadDirectory(directory)
            Issue.record("a world-writable playbook directory was read")
        } catch {
            #expect("\(error)".contains("chmod go-w \(directory)"))
        }
    }

    func shippedPlaybooksDirectory() -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("playbooks").path
    }
}
