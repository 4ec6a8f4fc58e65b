import com.google.gson.Gson;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.zetasql.Analyzer;
import com.google.zetasql.AnalyzerOptions;
import com.google.zetasql.FunctionArgumentType;
import com.google.zetasql.FunctionArgumentType.FunctionArgumentTypeOptions;
import com.google.zetasql.FunctionSignature;
import com.google.zetasql.LanguageOptions;
import com.google.zetasql.ParseLocationRange;
import com.google.zetasql.ParseResumeLocation;
import com.google.zetasql.Parser;
import com.google.zetasql.Procedure;
import com.google.zetasql.SimpleCatalog;
import com.google.zetasql.SimpleColumn;
import com.google.zetasql.SimpleConnection;
import com.google.zetasql.SimpleModel;
import com.google.zetasql.SimpleTable;
import com.google.zetasql.SqlException;
import com.google.zetasql.StructType.StructField;
import com.google.zetasql.TVFRelation;
import com.google.zetasql.TableValuedFunction;
import com.google.zetasql.Type;
import com.google.zetasql.TypeFactory;
import com.google.zetasql.ZetaSQLBuiltinFunctionOptions;
import com.google.zetasql.ZetaSQLFunctions.FunctionEnums.ArgumentCardinality;
import com.google.zetasql.ZetaSQLFunctions.FunctionEnums.Mode;
import com.google.zetasql.ZetaSQLFunctions.SignatureArgumentKind;
import com.google.zetasql.ZetaSQLOptions.ErrorMessageMode;
import com.google.zetasql.ZetaSQLOptions.ProductMode;
import com.google.zetasql.ZetaSQLType.TypeKind;
import com.google.zetasql.parser.ASTNodes.ASTExpressionSubquery;
import com.google.zetasql.parser.ASTNodes.ASTQuery;
import com.google.zetasql.parser.ASTNodes.ASTStatement;
import com.google.zetasql.parser.ASTNodes.ASTTVF;
import com.google.zetasql.parser.ASTNodes.ASTTVFArgument;
import com.google.zetasql.parser.ParseTreeVisitor;
import com.google.zetasql.resolvedast.ResolvedNodes.ResolvedCreateTableStmtBase;
import com.google.zetasql.resolvedast.ResolvedNodes.ResolvedOutputColumn;
import com.google.zetasql.resolvedast.ResolvedNodes.ResolvedQueryStmt;
import com.google.zetasql.resolvedast.ResolvedNodes.ResolvedStatement;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Google's ZetaSQL analyser (BigQuery's SQL front end) over what the gcp backend sends, one JSON
 * request a line on stdin, one JSON answer a line on stdout. The catalog declares what Google
 * documents and nothing else:
 *
 * <ul>
 *   <li>an object table's fixed schema (uri, generation, content_type, size, md5_hash, updated,
 *       metadata, ref) and its data pseudo-column (BYTES, absent from SELECT *): "Introduction to
 *       object tables";
 *   <li>ML.DECODE_IMAGE(BYTES) and ML.RESIZE_IMAGE(image, INT64, INT64, BOOL), both giving
 *       STRUCT&lt;ARRAY&lt;INT64&gt;, ARRAY&lt;FLOAT64&gt;&gt;: their reference pages;
 *   <li>ML.PREDICT(MODEL, TABLE): a table-valued function whose input must hold the model's feature
 *       column and whose output is the input's columns plus the model's outputs;
 *   <li>BQ.REFRESH_EXTERNAL_METADATA_CACHE(STRING [, ARRAY&lt;STRING&gt;]) as a procedure.
 * </ul>
 *
 * Tables, models and connections come with each request: their schemas as BigQuery's API gives
 * them (tables.get, models.get), query parameters with their declared types. A table a script
 * creates joins the catalog for the script's later statements.
 */
public final class Analyse {
  private static final Gson GSON = new Gson();
  private static final Type INT64 = TypeFactory.createSimpleType(TypeKind.TYPE_INT64);
  private static final Type FLOAT64 = TypeFactory.createSimpleType(TypeKind.TYPE_DOUBLE);
  private static final Type STRING = TypeFactory.createSimpleType(TypeKind.TYPE_STRING);
  private static final Type BYTES = TypeFactory.createSimpleType(TypeKind.TYPE_BYTES);
  private static final Type BOOL = TypeFactory.createSimpleType(TypeKind.TYPE_BOOL);
  private static final Type TIMESTAMP = TypeFactory.createSimpleType(TypeKind.TYPE_TIMESTAMP);
  private static final Type JSON = TypeFactory.createSimpleType(TypeKind.TYPE_JSON);
  private static final Type IMAGE =
      TypeFactory.createStructType(
          List.of(
              new StructField("", TypeFactory.createArrayType(INT64)),
              new StructField("", TypeFactory.createArrayType(FLOAT64))));

  public static void main(String[] args) throws Exception {
    LanguageOptions language = new LanguageOptions().enableMaximumLanguageFeatures();
    language.setSupportsAllStatementKinds();
    language.setProductMode(ProductMode.PRODUCT_EXTERNAL);
    ZetaSQLBuiltinFunctionOptions builtins = new ZetaSQLBuiltinFunctionOptions(language);
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    out.println("{\"ready\":true}");
    for (String line; (line = in.readLine()) != null; ) {
      JsonObject answer;
      try {
        answer = answer(GSON.fromJson(line, JsonObject.class), language, builtins);
      } catch (RuntimeException e) {
        e.printStackTrace(); // on stderr, which the harness keeps for a crash report
        answer = new JsonObject();
        answer.addProperty("ok", false);
        answer.addProperty("error", "analyser: " + e);
      }
      out.println(GSON.toJson(answer));
    }
  }

  private static JsonObject answer(JsonObject request, LanguageOptions language, ZetaSQLBuiltinFunctionOptions builtins) {
    String sql = request.get("sql").getAsString();
    AnalyzerOptions options = new AnalyzerOptions();
    options.setLanguageOptions(language);
    options.setErrorMessageMode(ErrorMessageMode.ERROR_MESSAGE_ONE_LINE);
    JsonObject answer = new JsonObject();
    if (request.has("op") && request.get("op").getAsString().equals("tables")) {
      JsonArray names = new JsonArray();
      for (List<String> path : Analyzer.extractTableNamesFromScript(sql, options)) names.add(GSON.toJsonTree(path));
      answer.add("tables", names);
      return answer;
    }
    for (JsonElement p : array(request, "params")) {
      JsonObject param = p.getAsJsonObject();
      options.addQueryParameter(param.get("name").getAsString(), parameterType(param.getAsJsonObject("parameterType")));
    }
    ParseResumeLocation location = new ParseResumeLocation(sql);
    List<ResolvedCreateTableStmtBase> created = new ArrayList<>();
    JsonArray kinds = new JsonArray();
    try {
      while (!sql.substring(location.getBytePosition()).trim().isEmpty()) {
        List<TVFRelation.Column> predictInput = predictInput(sql, location, language, options, catalog(request, builtins, created, null));
        SimpleCatalog catalog = catalog(request, builtins, created, predictInput);
        ResolvedStatement statement = Analyzer.analyzeNextStatement(location, options, catalog);
        kinds.add(statement.nodeKindString());
        if (statement instanceof ResolvedCreateTableStmtBase) created.add((ResolvedCreateTableStmtBase) statement);
      }
      answer.addProperty("ok", true);
      answer.add("kinds", kinds);
    } catch (SqlException | QueryRefused e) {
      answer.addProperty("ok", false);
      answer.addProperty("error", e.getMessage());
    }
    return answer;
  }

  /**
   * The columns of the query ML.PREDICT is given in the next statement (ZetaSQL's parser finds
   * the call, its analyser types the query), or null when the statement has no such call.
   */
  private static List<TVFRelation.Column> predictInput(
      String sql, ParseResumeLocation location, LanguageOptions language, AnalyzerOptions options, SimpleCatalog catalog) {
    ParseResumeLocation probe = new ParseResumeLocation(sql);
    probe.setBytePosition(location.getBytePosition());
    ASTStatement parsed = Parser.parseNextStatement(probe, language);
    List<ASTQuery> queries = new ArrayList<>();
    parsed.accept(
        new ParseTreeVisitor() {
          @Override
          public void visit(ASTTVF tvf) {
            List<String> name = new ArrayList<>();
            tvf.getName().getNames().forEach((id) -> name.add(id.getIdString().toUpperCase()));
            if (name.equals(List.of("ML", "PREDICT"))) {
              for (ASTTVFArgument argument : tvf.getArgumentEntries()) {
                if (argument.getExpr() instanceof ASTExpressionSubquery) queries.add(((ASTExpressionSubquery) argument.getExpr()).getQuery());
              }
            }
            defaultVisit(tvf);
          }
        });
    if (queries.isEmpty()) return null;
    if (queries.size() > 1) throw new IllegalArgumentException("more than one ML.PREDICT in one statement: the catalog declares one");
    ParseLocationRange range = queries.get(0).getParseLocationRange();
    ResolvedStatement query;
    try {
      query = Analyzer.analyzeStatement(sql.substring(range.start(), range.end()), options, catalog);
    } catch (SqlException e) {
      int line = (int) sql.substring(0, range.start()).chars().filter((c) -> c == '\n').count() + 1;
      throw new QueryRefused("in the query given to ML.PREDICT (from line " + line + "): " + e.getMessage());
    }
    List<TVFRelation.Column> columns = new ArrayList<>();
    for (ResolvedOutputColumn column : ((ResolvedQueryStmt) query).getOutputColumnList()) {
      columns.add(TVFRelation.Column.create(column.getName(), column.getColumn().getType()));
    }
    return columns;
  }

  private static SimpleCatalog catalog(
      JsonObject request, ZetaSQLBuiltinFunctionOptions builtins, List<ResolvedCreateTableStmtBase> created, List<TVFRelation.Column> predictInput) {
    SimpleCatalog root = new SimpleCatalog("bigquery");
    root.addZetaSQLFunctions(builtins);
    SimpleCatalog ml = root.addNewSimpleCatalog("ML");
    ml.addFunction(scalar("ML", "DECODE_IMAGE", IMAGE, BYTES));
    ml.addFunction(scalar("ML", "RESIZE_IMAGE", IMAGE, IMAGE, INT64, INT64, BOOL));
    root.addNewSimpleCatalog("BQ").addProcedure(refreshProcedure());
    for (JsonElement t : array(request, "tables")) {
      JsonObject table = t.getAsJsonObject();
      String path = table.get("path").getAsString();
      List<SimpleColumn> columns =
          table.has("objectTable") && table.get("objectTable").getAsBoolean() ? objectTableColumns(leaf(path)) : columns(leaf(path), array(table, "schema"));
      for (Target target : targets(root, path)) target.catalog.addSimpleTable(target.name, new SimpleTable(target.name, columns));
    }
    JsonObject predicted = null;
    for (JsonElement m : array(request, "models")) {
      JsonObject model = m.getAsJsonObject();
      String path = model.get("path").getAsString();
      for (Target target : targets(root, path)) target.catalog.addModel(new SimpleModel(target.name, named(model, "inputs"), named(model, "outputs")));
      if (predicted == null) predicted = model;
    }
    if (predicted != null && predictInput != null) {
      ml.addTableValuedFunction(predict(List.of("ML", "PREDICT"), predicted, predictInput));
      // Where the Java client looks a resolved TVF up again: in the root, by its full name.
      root.addTableValuedFunction(predict(List.of("ML.PREDICT"), predicted, predictInput));
    }
    for (JsonElement c : array(request, "connections")) {
      for (Target target : targets(root, c.getAsString())) target.catalog.addConnection(new SimpleConnection(target.name));
    }
    for (ResolvedCreateTableStmtBase table : created) addCreatedTable(root, table);
    return root;
  }

  /**
   * ML.PREDICT(MODEL m, query) as Google documents it: the query must give the model's feature
   * columns; the output is the query's columns followed by the model's outputs.
   */
  private static TableValuedFunction predict(List<String> name, JsonObject model, List<TVFRelation.Column> input) {
    List<TVFRelation.Column> required = new ArrayList<>();
    for (JsonElement feature : array(model, "inputs")) {
      // A vision model's feature is fed the image ML.DECODE_IMAGE / ML.RESIZE_IMAGE give.
      required.add(TVFRelation.Column.create(feature.getAsJsonObject().get("name").getAsString(), IMAGE));
    }
    FunctionArgumentTypeOptions relationOptions =
        FunctionArgumentTypeOptions.builder()
            .setCardinality(ArgumentCardinality.REQUIRED)
            .setRelationInputSchema(TVFRelation.createColumnBased(required))
            .setExtraRelationInputColumnsAllowed(true)
            .build();
    List<TVFRelation.Column> output = new ArrayList<>(input);
    for (SimpleModel.NameAndType column : named(model, "outputs")) output.add(TVFRelation.Column.create(column.getName(), column.getType()));
    TVFRelation result = TVFRelation.createColumnBased(output);
    // A fixed-output TVF carries its output schema on its result type (ZetaSQL reads it there).
    FunctionArgumentType resultType =
        new FunctionArgumentType(SignatureArgumentKind.ARG_TYPE_RELATION, FunctionArgumentTypeOptions.builder().setRelationInputSchema(result).build(), 1);
    FunctionSignature signature =
        new FunctionSignature(
            resultType,
            List.of(new FunctionArgumentType(SignatureArgumentKind.ARG_TYPE_MODEL), new FunctionArgumentType(SignatureArgumentKind.ARG_TYPE_RELATION, relationOptions, 1)),
            -1);
    return new TableValuedFunction.FixedOutputSchemaTVF(name, List.of(signature), result);
  }

  private static Procedure refreshProcedure() {
    FunctionArgumentType uris =
        new FunctionArgumentType(TypeFactory.createArrayType(STRING), FunctionArgumentTypeOptions.builder().setCardinality(ArgumentCardinality.OPTIONAL).build(), 1);
    FunctionSignature signature =
        new FunctionSignature(new FunctionArgumentType(INT64), List.of(new FunctionArgumentType(STRING), uris), -1);
    return new Procedure(List.of("BQ", "REFRESH_EXTERNAL_METADATA_CACHE"), signature);
  }

  private static com.google.zetasql.Function scalar(String group, String name, Type result, Type... args) {
    List<FunctionArgumentType> arguments = new ArrayList<>();
    for (Type arg : args) arguments.add(new FunctionArgumentType(arg));
    return new com.google.zetasql.Function(
        List.of(group, name), "BigQuery ML", Mode.SCALAR, List.of(new FunctionSignature(new FunctionArgumentType(result), arguments, -1)));
  }

  private static List<SimpleColumn> objectTableColumns(String table) {
    List<SimpleColumn> columns = new ArrayList<>();
    columns.add(new SimpleColumn(table, "uri", STRING));
    columns.add(new SimpleColumn(table, "generation", INT64));
    columns.add(new SimpleColumn(table, "content_type", STRING));
    columns.add(new SimpleColumn(table, "size", INT64));
    columns.add(new SimpleColumn(table, "md5_hash", STRING));
    columns.add(new SimpleColumn(table, "updated", TIMESTAMP));
    Type metadata = TypeFactory.createArrayType(TypeFactory.createStructType(List.of(new StructField("name", STRING), new StructField("value", STRING))));
    columns.add(new SimpleColumn(table, "metadata", metadata));
    Type ref =
        TypeFactory.createStructType(
            List.of(new StructField("uri", STRING), new StructField("version", STRING), new StructField("authorizer", STRING), new StructField("details", JSON)));
    columns.add(new SimpleColumn(table, "ref", ref));
    columns.add(new SimpleColumn(table, "data", BYTES, /* isPseudoColumn= */ true, /* isWritableColumn= */ false));
    return columns;
  }

  private static void addCreatedTable(SimpleCatalog root, ResolvedCreateTableStmtBase created) {
    String path = String.join(".", created.getNamePath());
    List<SimpleColumn> columns = new ArrayList<>();
    created.getColumnDefinitionList().forEach((d) -> columns.add(new SimpleColumn(leaf(path), d.getName(), d.getType())));
    for (Target target : targets(root, path)) {
      if (target.catalog.getTableNameList().contains(target.name.toLowerCase())) target.catalog.removeSimpleTable(target.name);
      target.catalog.addSimpleTable(target.name, new SimpleTable(target.name, columns));
    }
  }

  private static final class QueryRefused extends RuntimeException {
    QueryRefused(String message) {
      super(message);
    }
  }

  /** Where a dotted name is found: split into catalogs (project.dataset.name, dataset.name) and whole. */
  private record Target(SimpleCatalog catalog, String name) {}

  private static List<Target> targets(SimpleCatalog root, String dotted) {
    String[] parts = dotted.split("\\.");
    List<Target> targets = new ArrayList<>();
    targets.add(new Target(root, dotted));
    for (int start = 0; start < parts.length - 1; start++) {
      SimpleCatalog catalog = root;
      for (int i = start; i < parts.length - 1; i++) catalog = child(catalog, parts[i]);
      targets.add(new Target(catalog, parts[parts.length - 1]));
    }
    return targets;
  }

  private static SimpleCatalog child(SimpleCatalog parent, String name) {
    try {
      SimpleCatalog existing = parent.getCatalog(name);
      if (existing != null) return existing;
    } catch (Exception ignored) {
      // not there yet
    }
    return parent.addNewSimpleCatalog(name);
  }

  private static String leaf(String dotted) {
    return dotted.substring(dotted.lastIndexOf('.') + 1);
  }

  private static List<SimpleColumn> columns(String table, JsonArray schema) {
    List<SimpleColumn> columns = new ArrayList<>();
    for (JsonElement f : schema) columns.add(new SimpleColumn(table, f.getAsJsonObject().get("name").getAsString(), fieldType(f.getAsJsonObject())));
    return columns;
  }

  /** A TableFieldSchema (tables.get): type, mode, fields. */
  private static Type fieldType(JsonObject field) {
    String kind = field.get("type").getAsString();
    Type type;
    if (kind.equals("RECORD") || kind.equals("STRUCT")) {
      List<StructField> fields = new ArrayList<>();
      for (JsonElement f : array(field, "fields")) fields.add(new StructField(f.getAsJsonObject().get("name").getAsString(), fieldType(f.getAsJsonObject())));
      type = TypeFactory.createStructType(fields);
    } else {
      type = simple(kind);
    }
    boolean repeated = field.has("mode") && field.get("mode").getAsString().equals("REPEATED");
    return repeated ? TypeFactory.createArrayType(type) : type;
  }

  /** A QueryParameterType (jobs.insert): type, arrayType, structTypes. */
  private static Type parameterType(JsonObject parameter) {
    String kind = parameter.get("type").getAsString();
    if (kind.equals("ARRAY")) return TypeFactory.createArrayType(parameterType(parameter.getAsJsonObject("arrayType")));
    if (kind.equals("STRUCT")) {
      List<StructField> fields = new ArrayList<>();
      for (JsonElement f : array(parameter, "structTypes")) {
        JsonObject field = f.getAsJsonObject();
        fields.add(new StructField(field.has("name") ? field.get("name").getAsString() : "", parameterType(field.getAsJsonObject("type"))));
      }
      return TypeFactory.createStructType(fields);
    }
    return simple(kind);
  }

  /** A StandardSqlDataType (models.get): typeKind, arrayElementType, structType. */
  private static Type standardType(JsonObject type) {
    String kind = type.get("typeKind").getAsString();
    if (kind.equals("ARRAY")) return TypeFactory.createArrayType(standardType(type.getAsJsonObject("arrayElementType")));
    if (kind.equals("STRUCT")) {
      List<StructField> fields = new ArrayList<>();
      for (JsonElement f : array(type.getAsJsonObject("structType"), "fields")) {
        JsonObject field = f.getAsJsonObject();
        fields.add(new StructField(field.get("name").getAsString(), standardType(field.getAsJsonObject("type"))));
      }
      return TypeFactory.createStructType(fields);
    }
    return simple(kind);
  }

  private static List<SimpleModel.NameAndType> named(JsonObject model, String key) {
    List<SimpleModel.NameAndType> columns = new ArrayList<>();
    for (JsonElement c : array(model, key)) {
      JsonObject column = c.getAsJsonObject();
      columns.add(new SimpleModel.NameAndType(column.get("name").getAsString(), standardType(column.getAsJsonObject("type"))));
    }
    return columns;
  }

  private static Type simple(String kind) {
    switch (kind) {
      case "STRING":
        return STRING;
      case "BYTES":
        return BYTES;
      case "INTEGER":
      case "INT64":
        return INT64;
      case "FLOAT":
      case "FLOAT64":
        return FLOAT64;
      case "BOOLEAN":
      case "BOOL":
        return BOOL;
      case "TIMESTAMP":
        return TIMESTAMP;
      case "JSON":
        return JSON;
      case "DATE":
        return TypeFactory.createSimpleType(TypeKind.TYPE_DATE);
      case "DATETIME":
        return TypeFactory.createSimpleType(TypeKind.TYPE_DATETIME);
      case "TIME":
        return TypeFactory.createSimpleType(TypeKind.TYPE_TIME);
      case "NUMERIC":
        return TypeFactory.createSimpleType(TypeKind.TYPE_NUMERIC);
      case "BIGNUMERIC":
        return TypeFactory.createSimpleType(TypeKind.TYPE_BIGNUMERIC);
      case "GEOGRAPHY":
        return TypeFactory.createSimpleType(TypeKind.TYPE_GEOGRAPHY);
      case "INTERVAL":
        return TypeFactory.createSimpleType(TypeKind.TYPE_INTERVAL);
      default:
        throw new IllegalArgumentException("no ZetaSQL type for BigQuery type " + kind);
    }
  }

  private static JsonArray array(JsonObject object, String key) {
    return object != null && object.has(key) ? object.getAsJsonArray(key) : new JsonArray();
  }
}
