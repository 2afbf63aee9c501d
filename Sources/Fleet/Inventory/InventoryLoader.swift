import Foundation

/// Loads `<environment>.yml` from the directories the CLI chooses (never the current directory unasked).
public enum InventoryLoader {
    /// Environment variable naming an extra inventory directory.
    public static let directoryVariable = "GOVUK_FAB_INVENTORY_DIR"

    /// Loads the first `<environment>.yml` (or `.yaml`) found in `searchPaths`, in order.
    ///
    /// - Throws: ``InventoryError`` with ``InventoryError/Problem/unknownEnvironment(name:available:searched:)``
    ///   if no directory has the file, or any parse error located in the file.
    public static func load(environment given: String, searchPaths: [String]) throws(InventoryError) -> Inventory {
        let environment = environmentAliases[given] ?? given
        guard isValidEnvironmentName(environment) else {
            throw unknownEnvironment(environment, searchPaths: searchPaths)
        }
        for directory in searchPaths {
            for ext in ["yml", "yaml"] {
                let path = (directory as NSString).appendingPathComponent("\(environment).\(ext)")
                if FileManager.default.fileExists(atPath: path) {
                    return try load(file: path, defaultName: environment)
                }
            }
        }
        throw unknownEnvironment(environment, searchPaths: searchPaths)
    }

    /// Loads one inventory file (`--inventory PATH`). The environment name defaults to the file's base name.
    public static func load(file path: String, defaultName: String? = nil) throws(InventoryError) -> Inventory {
        let text = try InventoryParser.readFile(path)
        let name = defaultName ?? ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        return try InventoryParser.parse(text, file: path, defaultName: name)
    }

    /// fabric-scripts' second names for an environment (`fab production_aws` was `fab aws_production`).
    public static let environmentAliases = ["staging_aws": "aws_staging", "production_aws": "aws_production"]

    /// Environment names available in `searchPaths`, sorted and de-duplicated.
    public static func availableEnvironments(searchPaths: [String]) -> [String] {
        var names = Set<String>()
        for directory in searchPaths {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            for entry in entries where entry.hasSuffix(".yml") || entry.hasSuffix(".yaml") {
                names.insert((entry as NSString).deletingPathExtension)
            }
        }
        return names.sorted()
    }

    static func isValidEnvironmentName(_ name: String) -> Bool {
        // Keeps `../x` and the like from reaching the file system.
        !name.isEmpty && !name.hasPrefix(".")
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
    }

    static func unknownEnvironment(_ name: String, searchPaths: [String]) -> InventoryError {
        InventoryError(
            .unknownEnvironment(
                name: name, available: availableEnvironments(searchPaths: searchPaths),
                searched: searchPaths),
            at: SourceLocation(file: "command line"))
    }
}
