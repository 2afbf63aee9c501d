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

    func shippedPlaybooksDirectory() -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("playbooks").path
    }
}
