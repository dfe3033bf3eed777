// Whether the resources a patient adds are about them, so that a file picked by mistake
// (a family member's results, someone else's export) is refused before it is signed
// into their chart. This guards against mistakes, not against the patient: what they
// add is their own account and reads as theirs.
//
// Who "you" are in FHIR terms comes from the Patient records in the chart here. A Patient
// resource added is you if it has the id, or (another institution's export of the same
// person) the birth date, of one of them; a resource whose subject or patient names
// another Patient is refused. With no Patient record here and none added, nothing says
// who the patient is, and nothing is refused on this ground.
import { Refused, isObject, resourceLabel } from './fhir-input.js';

// The elements by which R4 resources name the person they are about.
const ABOUT = ['subject', 'patient', 'beneficiary'];
const PATIENT_REFERENCE = /(?:^|\/)Patient\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/;

const ABOUT_ANOTHER = 'names another patient than you';
const isPatient = (obj) => isObject(obj) && obj.resourceType === 'Patient';

export class Identity {
  // `patients`: the chart's Patient resources, as opened with the patient's key.
  constructor(patients) {
    this.ids = new Set(patients.map((p) => p.id).filter((id) => typeof id === 'string'));
    this.births = new Set(patients.map((p) => p.birthDate).filter((d) => typeof d === 'string'));
    this.urls = new Set();
  }

  get known() {
    return this.ids.size > 0 || this.urls.size > 0;
  }

  // The resources ([{ source, obj, fullUrl }]) that are about the patient, and a Refused
  // for each of the others. Added Patient resources are judged first: the others may
  // name them by a Bundle's fullUrl.
  sort(items) {
    const anchored = this.known;
    const kept = [];
    const refused = [];
    for (const item of items.filter((i) => isPatient(i.obj))) {
      const { id, birthDate } = item.obj;
      if (anchored && !this.ids.has(id) && !this.births.has(birthDate)) {
        refused.push(new Refused(item.source, resourceLabel('Patient', item.obj), '',
          'is another person: neither its id nor its birth date is that of your Patient record here'));
        continue;
      }
      if (typeof id === 'string') this.ids.add(id);
      if (item.fullUrl) this.urls.add(item.fullUrl);
      kept.push(item);
    }
    const byUrl = new Map(items.filter((i) => i.fullUrl).map((i) => [i.fullUrl, i.obj]));
    for (const item of items.filter((i) => !isPatient(i.obj))) {
      const other = this.known ? this.otherPatient(item.obj, byUrl) : null;
      if (other === null) kept.push(item);
      else refused.push(new Refused(item.source, resourceLabel(item.obj.resourceType, item.obj), other, ABOUT_ANOTHER));
    }
    return { kept, refused };
  }

  // The element that names a Patient other than the patient, or null.
  otherPatient(obj, byUrl) {
    if (!isObject(obj)) return null;
    for (const element of ABOUT) {
      const references = Array.isArray(obj[element]) ? obj[element] : [obj[element]];
      for (const ref of references) {
        const reference = isObject(ref) && typeof ref.reference === 'string' ? ref.reference : null;
        if (reference !== null && !this.isYou(reference, byUrl)) return element;
      }
    }
    return null;
  }

  isYou(reference, byUrl) {
    if (byUrl.has(reference)) return !isPatient(byUrl.get(reference)) || this.urls.has(reference);
    const match = PATIENT_REFERENCE.exec(reference);
    // A reference to anything but a Patient (a Group, a contained resource) names no one.
    return match === null || this.ids.has(match[1]);
  }
}
