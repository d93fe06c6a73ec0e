// The notes board: lists, creates and deletes notes through the generated client (./api.ts),
// and shows the host's validation answer (422, with the failing fields) next to the form.
import "./style.css";
import { api, BerthError, type Note } from "./api";

const MAX_TEXT = 280;

function element<T extends HTMLElement>(selector: string): T {
  const found = document.querySelector<T>(selector);
  if (found === null) throw new Error(`the page has no ${selector}`);
  return found;
}

const form = element<HTMLFormElement>('[data-testid="note-form"]');
const textInput = element<HTMLTextAreaElement>('[data-testid="note-text"]');
const colorInput = element<HTMLSelectElement>('[data-testid="note-color"]');
const addButton = element<HTMLButtonElement>('[data-testid="note-add"]');
const counter = element<HTMLSpanElement>('[data-testid="note-counter"]');
const errorBox = element<HTMLDivElement>('[data-testid="form-error"]');
const errorMessage = element<HTMLParagraphElement>('[data-testid="form-error-message"]');
const errorFields = element<HTMLUListElement>('[data-testid="form-error-fields"]');
const status = element<HTMLParagraphElement>('[data-testid="status"]');
const list = element<HTMLUListElement>('[data-testid="notes"]');

const inputs: Record<string, HTMLElement> = { text: textInput, color: colorInput };

/** What to tell the user about a failed call. */
function describe(e: unknown): string {
  if (e instanceof BerthError) {
    if (e.status === 0) return "The server cannot be reached. Check that berth is running, then try again.";
    const id = e.requestId === undefined ? "" : ` (request ${e.requestId})`;
    return `${e.message}${id}`;
  }
  return e instanceof Error ? e.message : String(e);
}

function clearError(): void {
  errorBox.hidden = true;
  errorMessage.textContent = "";
  errorFields.replaceChildren();
  for (const input of Object.values(inputs)) input.removeAttribute("aria-invalid");
}

function showError(e: unknown): void {
  clearError();
  if (e instanceof BerthError && e.code === "validation" && e.fields.length > 0) {
    errorMessage.textContent = "The note was not saved:";
    for (const field of e.fields) {
      const item = document.createElement("li");
      item.dataset.testid = "field-error";
      item.dataset.field = field.path;
      const name = document.createElement("strong");
      name.textContent = field.path;
      item.append(name, `: ${field.message}`);
      errorFields.append(item);
      inputs[field.path]?.setAttribute("aria-invalid", "true");
    }
  } else {
    errorMessage.textContent = describe(e);
  }
  errorBox.hidden = false;
}

function formatDate(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function render(notes: Note[]): void {
  list.replaceChildren(
    ...notes.map((note) => {
      const item = document.createElement("li");
      item.className = `note note-${note.color}`;
      item.dataset.testid = "note";
      item.dataset.id = String(note.id);
      item.dataset.color = note.color;

      const text = document.createElement("p");
      text.className = "note-text";
      text.dataset.testid = "note-body";
      text.textContent = note.text;

      const footer = document.createElement("div");
      footer.className = "note-footer";
      const time = document.createElement("time");
      time.dateTime = note.created_at;
      time.textContent = formatDate(note.created_at);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "note-delete";
      remove.dataset.testid = "note-delete";
      remove.textContent = "Delete";
      remove.setAttribute("aria-label", `Delete note: ${note.text.slice(0, 40)}`);
      remove.addEventListener("click", () => void deleteNote(note, remove));
      footer.append(time, remove);

      item.append(text, footer);
      return item;
    }),
  );
  status.textContent = notes.length === 0 ? "No notes yet: add the first one above." : `${notes.length} note${notes.length === 1 ? "" : "s"}`;
}

async function refresh(): Promise<void> {
  try {
    render(await api.notes.list());
    list.dataset.loaded = "true";
  } catch (e) {
    status.textContent = `Could not load the notes: ${describe(e)}`;
  }
}

async function deleteNote(note: Note, button: HTMLButtonElement): Promise<void> {
  button.disabled = true;
  try {
    await api.notes.delete(note.id);
  } catch (e) {
    // Already gone (deleted in another tab): the refresh below shows the board as it is.
    if (!(e instanceof BerthError && e.code === "not_found")) {
      showError(e);
      button.disabled = false;
      return;
    }
  }
  await refresh();
}

function updateCounter(): void {
  const length = [...textInput.value].length;
  counter.textContent = `${length} / ${MAX_TEXT}`;
  counter.classList.toggle("over", length > MAX_TEXT);
}

// No client-side checks block the submission: the host validates (garde rules in the group) and
// its 422 answer, with the failing fields, is what the user sees.
form.addEventListener("submit", (event) => {
  event.preventDefault();
  void (async () => {
    addButton.disabled = true;
    try {
      await api.notes.create({ text: textInput.value, color: colorInput.value });
      clearError();
      textInput.value = "";
      updateCounter();
      await refresh();
      textInput.focus();
    } catch (e) {
      showError(e);
    } finally {
      addButton.disabled = false;
    }
  })();
});

textInput.addEventListener("input", updateCounter);
textInput.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
});

updateCounter();
void refresh();
