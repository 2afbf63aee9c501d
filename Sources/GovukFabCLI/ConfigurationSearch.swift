import Fleet
import FleetTasks
import Foundation

/// Where inventories and playbooks are read from. They decide which hosts a run touches and what
/// it runs there, so the current directory is never searched unasked: running from another
/// directory must not swap in that directory's `production.yml`. See docs/inventory.md.
///
/// In order, each kind (inventories, playbooks):
/// 1. `--config-dir DIR`: `DIR/inventories`, `DIR/playbooks` (`--config-dir .` for the current directory);
/// 2. `$GOVUK_FAB_INVENTORY_DIR` / `$GOVUK_FAB_PLAYBOOK_DIR`;
/// 3. unless `--config-dir` is given, the project: the checkout the binary was built in, else the
///    installed `PREFIX/share/govuk-fab` next to the binary's `bin/`.
struct ConfigurationSearch: Sendable {
    struct Directory: Sendable, Hashable {
        var path: String
        var source: InventoryOrigin.Source
    }

    /// `--config-dir`, as given.
    var configDirectory: String?
    var environment: [String: String]
    /// The checkout the binary was built in, if any.
    var checkoutRoot: String?
    /// `PREFIX/share/govuk-fab` for an installed binary, if it exists.
    var installedRoot: String?
    /// The current directory, for the warning about configuration left unread there.
    var workingDirectory: String

    init(
        configDirectory: String?, environment: [String: String],
        checkoutRoot: String? = CheckoutLocator.root(), installedRoot: String? = ConfigurationSearch.installedRoot(),
        workingDirectory: String = FileManager.default.currentDirectoryPath
    ) {
        self.configDirectory = configDirectory
        self.environment = environment
        self.checkoutRoot = checkoutRoot
        self.installedRoot = installedRoot
        self.workingDirectory = workingDirectory
    }

    var inventoryDirectories: [Directory] {
        directories(subdirectory: "inventories", variable: InventoryLoader.directoryVariable)
    }

    /// Playbook directories that exist; every one is loaded.
    var playbookDirectories: [Directory] {
        directories(subdirectory: "playbooks", variable: "GOVUK_FAB_PLAYBOOK_DIR")
            .filter { FileManager.default.fileExists(atPath: $0.path) }
    }

    private func directories(subdirectory: String, variable: String) -> [Directory] {
        var found: [Directory] = []
        if let configDirectory {
            found.append(Directory(path: Self.join(configDirectory, subdirectory), source: .configDirectory))
        }
        if let dir = environment[variable], !dir.isEmpty {
            found.append(Directory(path: dir, source: .environmentVariable))
        }
        if configDirectory == nil {
            if let checkoutRoot {
                found.append(Directory(path: Self.join(checkoutRoot, subdirectory), source: .checkout))
            } else if let installedRoot {
                found.append(Directory(path: Self.join(installedRoot, subdirectory), source: .installed))
            }
        }
        var seen = Set<String>()
        return found.filter { seen.insert(absolute($0.path)).inserted }
    }

    /// The origin of the file the loader picked from ``inventoryDirectories``.
    func origin(ofInventoryAt path: String) -> InventoryOrigin {
        let file = absolute(path)
        let directory = (file as NSString).deletingLastPathComponent
        let source = inventoryDirectories.first { absolute($0.path) == directory }?.source ?? .inventoryOption
        return InventoryOrigin(path: file, source: source)
    }

    /// A warning when `./inventories/ENVIRONMENT.yml` exists in the current directory but is not the
    /// file read, so an operator used to Fabric's "the fabfile here" is told, not surprised.
    func unreadInventory(environment name: String, used: String?) -> String? {
        for ext in ["yml", "yaml"] {
            let local = Self.join(Self.join(workingDirectory, "inventories"), "\(name).\(ext)")
            guard FileManager.default.fileExists(atPath: local), used.map(absolute) != absolute(local) else { continue }
            return "inventories/\(name).\(ext) in the current directory is not read"
                + (used.map { " (using \($0))" } ?? "") + "; to use it, pass --config-dir . (see docs/inventory.md)"
        }
        return nil
    }

    /// A warning when `./playbooks` exists in the current directory but is not loaded.
    func unreadPlaybooks() -> String? {
        let local = Self.join(workingDirectory, "playbooks")
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: local, isDirectory: &isDirectory), isDirectory.boolValue,
            !playbookDirectories.contains(where: { absolute($0.path) == absolute(local) })
        else { return nil }
        return "playbooks/ in the current directory is not read; to use it, pass --config-dir . (see docs/inventory.md)"
    }

    /// `PREFIX/share/govuk-fab` when the binary runs from `PREFIX/bin` and that directory exists.
    static func installedRoot(executable: String = CommandLine.arguments.first ?? "") -> String? {
        let binary = URL(fileURLWithPath: executable).resolvingSymlinksInPath()
        guard binary.path.hasPrefix("/") else { return nil }
        let root = binary.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(
            "share/govuk-fab"
        ).path
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory) && isDirectory.boolValue
            ? root : nil
    }

    private func absolute(_ path: String) -> String {
        let full = path.hasPrefix("/") ? path : Self.join(workingDirectory, path)
        return URL(fileURLWithPath: full).standardizedFileURL.resolvingSymlinksInPath().path
    }

    private static func join(_ directory: String, _ name: String) -> String {
        (directory as NSString).appendingPathComponent(name)
    }
}
