import Foundation
import Testing

/// Issue 15: the current directory's inventories/ and playbooks/ are read only when asked
/// (`--config-dir .`), and every run names its inventory file in the header, `run_started` and
/// the audit log. The real binary, run from a directory that is not the checkout.
@Suite("govuk-fab inventory search path", .enabled(if: GovukFabBinary.exists, "needs the built govuk-fab"))
struct InventorySearchEndToEndTests {
    /// A directory holding its own `inventories/staging.yml` naming a host the real staging lacks.
    static func elsewhere() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("elsewhere-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: directory + "/inventories", withIntermediateDirectories: true)
        try """
        name: staging
        ssh: {user: oncall, port: 22}
        hosts:
          - {name: planted-1, address: 10.66.6.6, node_type: cache, puppet_classes: [gor]}
        """.write(toFile: directory + "/inventories/staging.yml", atomically: true, encoding: .utf8)
        return directory
    }

    /// Before the fix this listed planted-1: the working directory was searched first.
    @Test func anotherDirectorysInventoryIsNotSwappedIn() async throws {
        let directory = try Self.elsewhere()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try await CLI.run(["staging", "all", "hosts"], directory: directory)
        #expect(result.status == 0, "\(result)")
        #expect(!result.stdout.contains("planted-1"), "the current directory's staging.yml was read: \(result)")
        #expect(result.stdout.split(separator: "\n").contains("cache-1"), "\(result)")
        #expect(result.stderr.contains("inventories/staging.yml in the current directory is not read"), "\(result)")
        #expect(result.stderr.contains(GovukFabBinary.repositoryRoot + "/inventories/staging.yml"), "\(result)")
        #expect(result.stderr.contains("--config-dir ."), "\(result)")
    }

    @Test func configDirDotReadsTheCurrentDirectory() async throws {
        let directory = try Self.elsewhere()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try await CLI.run(["--config-dir", ".", "staging", "all", "hosts"], directory: directory)
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.split(separator: "\n") == ["planted-1"], "\(result)")
        #expect(!result.stderr.contains("not read"), "\(result)")
        let missing = try await CLI.run(["--config-dir", directory + "/nope", "staging", "all", "hosts"])
        #expect(missing.status == 2, "\(missing)")
        #expect(missing.stderr.contains("--config-dir"), "\(missing)")
    }

    /// The header, `run_started` and the audit log name the file and how it was chosen.
    @Test func runHeaderJSONAndAuditNameTheInventory() async throws {
        let directory = try Self.elsewhere()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let state = ["XDG_STATE_HOME": directory + "/state"]
        let expected = GovukFabBinary.repositoryRoot + "/inventories/staging.yml"
        let text = try await CLI.run(
            ["--dry-run", "--force", "staging", "-H", "cache-1", "do:uptime"],
            environment: state, directory: directory)
        #expect(text.status == 0, "\(text)")
        #expect(text.stdout.contains("inventory: \(expected) (checkout)"), "\(text)")

        let json = try await CLI.run(
            ["--json", "--dry-run", "--force", "--config-dir", ".", "staging", "all", "do:uptime"],
            environment: state, directory: directory)
        #expect(json.status == 0, "\(json)")
        let started = try #require(json.jsonEvents.first { $0["event"] as? String == "run_started" }, "\(json)")
        #expect(started["inventory"] as? String == directory + "/inventories/staging.yml")
        #expect(started["inventory_source"] as? String == "--config-dir")

        let audit = try String(contentsOfFile: directory + "/state/govuk-fab/audit.jsonl", encoding: .utf8)
        let records = audit.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
        #expect(records.map { $0["event"] as? String } == ["started", "finished", "started", "finished"], "\(audit)")
        #expect(
            records.prefix(2).allSatisfy {
                $0["inventory"] as? String == expected && $0["inventory_source"] as? String == "checkout"
            },
            "\(audit)")
        #expect(records.suffix(2).allSatisfy { $0["inventory_source"] as? String == "--config-dir" }, "\(audit)")
    }
}
