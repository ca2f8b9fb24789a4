/*
 * SlicerGISTRisk: export_annotations_geojson.groovy
 *
 * Purpose: export the objects of the current image as one GeoJSON FeatureCollection in QuPath's
 *          0.4+ schema (UUID id, objectType, classification {name, color}, measurements map),
 *          one file per image, named <image name without its extension>.geojson (characters other
 *          than letters, digits, '.', '_', '-' and space become '_'). The files are what
 *          qupath_bridge.geojson.read_annotations and `gistrisk pathology tiles` read.
 *          Images of one project whose names give the same file name (case ignored) are refused
 *          with an error naming them, never overwritten: rename all but one in QuPath.
 * QuPath version: written for 0.4-0.6, not run here: no QuPath on the build machines.
 *          The output form (exportObjectsToGeoJson with "FEATURE_COLLECTION") is covered by
 *          tests/qupath_bridge/test_qp_groovy.py through a fixture in that form.
 * Run:     GUI: Automate > Script editor, open this file, then Run > Run for project
 *          (or Run, for the open image only).
 *          Headless: QuPath script -p /path/to/project.qpproj -a outputDir=/path/to/out export_annotations_geojson.groovy
 *          (one -a name=value per parameter to override; no -i: every image of the project).
 * Parameters (defaults in the block below; headless runs override them with -a name=value):
 *   outputDir            folder for the .geojson files; '' = <project folder>/annotations_geojson
 *   includeDetections    false = annotations only; true = also detections, tiles and cells
 *   prettyJson           true = indented JSON (larger files)
 *   excludeMeasurements  true = leave measurements out (smaller files)
 *   skipEmpty            true = write no file for an image without objects (the reader rejects empty files)
 */

// ---- Parameters ----
def params = [
    outputDir          : '',
    includeDetections  : false,
    prettyJson         : false,
    excludeMeasurements: false,
    skipEmpty          : true,
]
// ---- End of parameters ----

// Headless: QuPath puts the -a values in 'args'; in the GUI there is no such variable.
def cliArgs = binding.hasVariable('args') ? (args as List) : []
for (String arg : cliArgs) {
    def kv = arg.split('=', 2)
    if (kv.length != 2 || !params.containsKey(kv[0]))
        throw new IllegalArgumentException("Unknown argument '" + arg + "': expected name=value with name in " + params.keySet())
    params[kv[0]] = (params[kv[0]] instanceof Boolean) ? Boolean.parseBoolean(kv[1].trim()) : kv[1]
}

def imageData = getCurrentImageData()
if (imageData == null)
    throw new IllegalStateException('No image is open: open an image or use Run for project')
def entry = getProjectEntry()
String imageName = entry != null ? entry.getImageName() : imageData.getServer().getMetadata().getName()

// File-name rule, the same as qupath_bridge/naming.py (tests compare them): drop the last extension,
// then every character other than letters, digits, '.', '_', '-' and space becomes '_'.
def baseNameOf = { String name -> name.replaceAll('\\.[^.]*$', '').replaceAll('[^A-Za-z0-9._ -]', '_') }
String baseName = baseNameOf(imageName)

// Images of the project whose names give the same file name (case ignored, as on Windows and macOS)
// would overwrite each other's file: stop, naming them.
def qpProject = getProject()
if (qpProject != null) {
    def sharing = qpProject.getImageList().findAll { baseNameOf(it.getImageName()).equalsIgnoreCase(baseName) }
    if (sharing.size() > 1)
        throw new IllegalStateException("SlicerGISTRisk: images " +
                sharing.collect { "'" + it.getImageName() + "'" }.join(', ') +
                " of this project have the same file name '" + baseName + '.geojson' + "'; " +
                "rename all but one (right-click the image > Rename image) and run again")
}

String outDir = params.outputDir ? params.outputDir : buildFilePath(PROJECT_BASE_DIR, 'annotations_geojson')
mkdirs(outDir)

def objects = params.includeDetections ? getAllObjects(false) : getAnnotationObjects()
if (objects.isEmpty() && params.skipEmpty) {
    println "SlicerGISTRisk: '" + imageName + "' has no objects to export; no file written"
    return
}

def options = ['FEATURE_COLLECTION']
if (params.prettyJson)
    options << 'PRETTY_JSON'
if (params.excludeMeasurements)
    options << 'EXCLUDE_MEASUREMENTS'

String path = buildFilePath(outDir, baseName + '.geojson')
exportObjectsToGeoJson(objects, path, *options)
println "SlicerGISTRisk: exported " + objects.size() + " objects of '" + imageName + "' to " + path
