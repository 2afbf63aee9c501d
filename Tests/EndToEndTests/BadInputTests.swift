import Foundation
import TestFleet
import Testing

/// Bad input gets one clear line naming the problem, and the documented exit
/// code; never a crash. These need no fleet.
@Suite("govuk-fab bad input", .enabled(if: GovukFabBinary.exists, "needs the built govuk-fab"))
struct BadInputTests {
    func errorLine(_ result: CommandRunResult) -> String {
        result.stderr.split(separator: "\n").first.map(String.init) ?? ""
    }

    @Test func unknownEnvironmentListsTheKnownOnes() async throws {
        let result = try await CLI.run(["prodution", "all", "hosts"])
        #expect(result.status == 2, "\(result)")
        #expect(errorLine(result).contains("production"), "suggests or lists production: \(result.stderr)")
    }

    @Test func malformedYAMLNamesFileAndLine() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(getpid()).yml").path
        try "name: bad\nssh:\n  user: root\n  port: [oops\nhosts: []\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try await CLI.run(["--inventory", path, "bad", "all", "hosts"])
        #expect(result.status == 2, "\(result)")
        #expect(errorLine(result).contains("bad-\(getpid()).yml:"), "\(result.stderr)")
    }

    @Test func unknownTaskSuggestsNearNames() async throws {
        let result = try await CLI.run(["staging", "all", "recover-gorepaly"])
        #expect(result.status == 2, "\(result)")
        #expect(result.stderr.contains("recover-goreplay"), "\(result.stderr)")
    }

    @Test func missingTaskArgument() async throws {
        let result = try await CLI.run(["staging", "all", "app.start"])
        #expect(result.status == 2, "\(result)")
        #expect(result.stderr.contains("app.start"))
    }

    @Test func unknownSelectorValueExits4WithSuggestion() async throws {
        let result = try await CLI.run(["staging", "puppet_class:gorr", "hosts"])
        #expect(result.status == 4, "\(result)")
        #expect(result.stderr.contains("gor"), "\(result.stderr)")
    }

    @Test func unknownOptionIsUsageError() async throws {
        let result = try await CLI.run(["--paralel", "3", "staging", "all", "hosts"])
        #expect(result.status == 2, "\(result)")
    }

    @Test func duplicateHostsAreMergedWithAWarning() async throws {
        let result = try await CLI.run(["staging", "-H", "cache-1,cache-1", "hosts"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.split(separator: "\n") == ["cache-1"], "\(result)")
        #expect(result.stderr.contains("warning"), "\(result.stderr)")
    }

    @Test func listShowsEveryTask() async throws {
        let result = try await CLI.run(["--list"])
        #expect(result.status == 0)
        for task in ["sdo:", "do:", "app.start", "recover-goreplay", "check-goreplay", "deploy-goreplay"] {
            #expect(result.stdout.contains(task), "\(task) missing from --list")
        }
    }

    @Test func inventoriesDryRunShowsProductionCommand() async throws {
        // The runbook line against the shipped production inventory, dry run: no connection, exact commands.
        let result = try await CLI.run([
            "production", "puppet_class:gor",
            "sdo:rm /etc/govuk/env.d/FACTER_data_sync_in_progress", "app.start:goreplay", "--dry-run",
        ])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("rm /etc/govuk/env.d/FACTER_data_sync_in_progress"))
    }
}
