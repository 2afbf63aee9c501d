import Fleet
import Foundation
import Testing

@testable import GovukFabCLI

/// The inventory and playbook search path: the project and explicit choices, never the current
/// directory unasked (issue 15: running from another directory swapped in its production.yml).
@Suite("Inventory and playbook search path")
struct ConfigurationSearchTests {
    /// A project checkout and an unrelated working directory, each with inventories/ and playbooks/.
    struct Layout {
        let root: String
        var checkout: String { root + "/checkout" }
        var elsewhere: String { root + "/elsewhere" }

        init() throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("search-\(UUID().uuidString)").path
            for base in [root + "/checkout", root + "/elsewhere"] {
                try FileManager.default.createDirectory(
                    atPath: base + "/inventories", withIntermediateDirectories: true)
                try FileManager.default.createDirectory(atPath: base + "/playbooks", withIntermediateDirectories: true)
                try "name: production\nhosts: []\n".write(
                    toFile: base + "/inventories/production.yml", atomically: true, encoding: .utf8)
            }
        }

        func search(
            configDirectory: String? = nil, environment: [String: String] = [:], installed: String? = nil,
            checkout: Bool = true
        ) -> ConfigurationSearch {
            ConfigurationSearch(
                configDirectory: configDirectory, environment: environment,
                checkoutRoot: checkout ? self.checkout : nil, installedRoot: installed,
                workingDirectory: elsewhere)
        }
    }

    @Test func theCurrentDirectoryIsNotSearchedUnasked() throws {
        let layout = try Layout()
        defer { try? FileManager.default.removeItem(atPath: layout.root) }
        let search = layout.search()
        #expect(search.inventoryDirectories.map(\.path) == [layout.checkout + "/inventories"])
        #expect(search.playbookDirectories.map(\.path) == [layout.checkout + "/playbooks"])
        let origin = search.origin(ofInventoryAt: layout.checkout + "/inventories/production.yml")
        #expect(origin.source == .checkout)
        let warning = try #require(search.unreadInventory(environment: "production", used: origin.path))
        #expect(warning.contains("inventories/production.yml in the current directory is not read"))
        #expect(warning.contains(layout.checkout + "/inventories/production.yml"))
        #expect(warning.contains("--config-dir ."))
        #expect(search.unreadPlaybooks()?.contains("--config-dir .") == true)
    }

    @Test func configDirReplacesTheProjectAndComesFirst() throws {
        let layout = try Layout()
        defer { try? FileManager.default.removeItem(atPath: layout.root) }
        let search = layout.search(configDirectory: ".", environment: ["GOVUK_FAB_INVENTORY_DIR": "/etc/govuk-fab"])
        #expect(search.inventoryDirectories.map(\.source) == [.configDirectory, .environmentVariable])
        #expect(search.inventoryDirectories.first?.path == "./inventories")
        let origin = search.origin(ofInventoryAt: layout.elsewhere + "/inventories/production.yml")
        #expect(origin.source == .configDirectory)
        #expect(search.unreadInventory(environment: "production", used: origin.path) == nil)
        #expect(search.unreadPlaybooks() == nil)
    }

    @Test func environmentVariablesComeBeforeTheProject() throws {
        let layout = try Layout()
        defer { try? FileManager.default.removeItem(atPath: layout.root) }
        let search = layout.search(environment: [
            "GOVUK_FAB_INVENTORY_DIR": layout.root + "/extra",
            "GOVUK_FAB_PLAYBOOK_DIR": layout.root + "/missing",
        ])
        #expect(search.inventoryDirectories.map(\.source) == [.environmentVariable, .checkout])
        // Missing playbook directories are left out; the project's stays.
        #expect(search.playbookDirectories.map(\.source) == [.checkout])
    }

    @Test func anInstalledBinaryReadsItsShareDirectory() throws {
        let layout = try Layout()
        defer { try? FileManager.default.removeItem(atPath: layout.root) }
        let share = layout.root + "/prefix/share/govuk-fab"
        try FileManager.default.createDirectory(atPath: share + "/inventories", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: layout.root + "/prefix/bin", withIntermediateDirectories: true)
        #expect(ConfigurationSearch.installedRoot(executable: layout.root + "/prefix/bin/govuk-fab") == share)
        #expect(ConfigurationSearch.installedRoot(executable: layout.root + "/nowhere/bin/govuk-fab") == nil)
        let search = layout.search(installed: share, checkout: false)
        #expect(search.inventoryDirectories.map(\.path) == [share + "/inventories"])
        #expect(search.origin(ofInventoryAt: share + "/inventories/production.yml").source == .installed)
    }
}
